"""Saving and loading models: one ``.npz`` file, no pickles, written atomically.

The file holds the architecture (as JSON text) with each layer's dtype and
backend, every Linear layer's W and W0, and, where given, an ``Optimizer``'s
rule, hyperparameters, step count and state, so that training goes on where it
stopped. It is read with ``allow_pickle=False``, so loading a file can never run
code. A save writes a temporary file beside the target and renames it over the
target, so a save that is interrupted leaves the previous file as it was.
"""

import json
import os
import stat
import uuid
import zipfile

import numpy as np

from ._validation import check_dtype
from .backends import check_backend
from .layers import BUILTIN, NLL, Linear, arguments, is_builtin
from .optimizers import HYPER, Optimizer
from .sequential import Sequential

FORMAT = "fastffn-model"
VERSION = 2
READS = (1, 2)  # version 1 kept one dtype and one backend for the whole model


def save(model, path, optimizer=None):
    """Writes ``model`` to ``path`` (a ``.npz`` file), replacing it atomically.

    The file gets the mode a plain ``open(path, "w")`` would give it: the old
    file's when it replaces one, else what the umask allows.

    Args:
        model (Sequential): A model of built-in layers ending in the NLL loss.
        path (str or PathLike): Where to write.
        optimizer (Optimizer): The one training ``model``, to be saved with it (its
            state included), or None.

    Raises:
        TypeError: The model holds a layer that is not built in, or ``optimizer``
            is not an Optimizer.
        ValueError: ``optimizer`` holds another model's state.

    """
    for module in [*model.modules, model.loss]:
        if not is_builtin(module):
            raise TypeError(
                f"model: cannot save a {type(module).__name__} layer; only "
                f"{', '.join(BUILTIN)} can be saved"
            )
    if type(model.loss) is not NLL:
        raise TypeError(f"model: cannot save a {type(model.loss).__name__} loss; only NLL")
    header = {
        "format": FORMAT,
        "version": VERSION,
        "layers": [
            {
                "type": type(m).__name__,
                "backend": m.backend,
                **({"m": m.m, "n": m.n, "dtype": m.W.dtype.name} if type(m) is Linear else {}),
                **arguments(m),
            }
            for m in model.modules
        ],
        "loss": {"type": "NLL", "backend": model.loss.backend},
    }
    if optimizer is not None:
        header["optimizer"] = _optimizer_header(model, optimizer)
    arrays = {"header": np.array(json.dumps(header))}
    if optimizer is not None and optimizer.slots is not None:
        arrays["slots"] = optimizer.slots
    for k, m in enumerate(model.linear_layers):
        arrays[f"W{k}"], arrays[f"W0{k}"] = m.W, m.W0

    path = os.fspath(path)
    tmp = os.path.join(os.path.dirname(os.path.abspath(path)), f".fastffn-{uuid.uuid4().hex}.tmp")
    # os.open applies the umask to 0o666 as open(path, "w") would; mkstemp would give 0o600.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        if os.path.exists(path):
            os.chmod(fd, stat.S_IMODE(os.stat(path).st_mode))
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def load(path, optimizer=False):
    """Reads a model written by ``save``.

    Args:
        path (str or PathLike): The ``.npz`` file.
        optimizer (bool): Whether to return the saved optimizer too.

    Returns:
        Sequential: The model, each layer with its saved dtype, backend and
            weights; its predictions are bit-identical to the saved model's.
            With ``optimizer``, ``(model, Optimizer or None)``: the optimizer as
            it was saved, bound to the model (None where none was saved).

    Raises:
        FileNotFoundError: There is no such file.
        ValueError: The file is not a fastffn model (corrupt, truncated, another
            format) or was written by another version of the format.

    """
    unreadable = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile)
    try:
        data = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise
    except unreadable as err:
        raise ValueError(f"{path} is not a readable fastffn model file: {err}") from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise ValueError(f"{path} is not a fastffn model file: it holds one array, not an archive")
    with data:
        try:
            header = json.loads(str(data["header"]))
            arrays = {key: data[key] for key in data.files}
        except unreadable as err:
            raise ValueError(f"{path} is not a readable fastffn model file: {err}") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ValueError(f"{path} is not a fastffn model file")
    if header.get("version") not in READS:
        raise ValueError(
            f"{path} is a fastffn model of format version {header.get('version')}; "
            f"this fastffn reads versions {', '.join(map(str, READS))}"
        )
    try:
        model = _model(header, arrays)
        if not optimizer:
            return model
        return model, _optimizer(header.get("optimizer"), arrays.get("slots"), model)
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise ValueError(f"{path} holds an inconsistent fastffn model: {err!r}") from None


def _model(header, arrays):
    """The Sequential a header and its arrays describe; TypeError or ValueError where the
    header is not what ``save`` writes."""
    layers, loss = header["layers"], header["loss"]
    if not (isinstance(layers, list) and layers and all(isinstance(s, dict) for s in layers)):
        raise TypeError(f"layers must be a non-empty list of layers, got {layers!r:.80}")
    modules, k = [], 0
    for spec in layers:
        backend = _backend(spec.get("backend", header.get("backend")))
        kind = spec["type"]
        if kind not in BUILTIN or kind == "NLL":
            raise ValueError(f"unknown layer type {kind!r:.40}")
        if kind == "Linear":
            m, n = spec["m"], spec["n"]
            if not (type(m) is int and type(n) is int):
                raise TypeError(f"layer {k}'s sizes must be integers, got {m!r:.20}, {n!r:.20}")
            dtype = np.dtype(check_dtype("dtype", spec.get("dtype", header.get("dtype"))))
            W, W0 = arrays[f"W{k}"], arrays[f"W0{k}"]
            if W.shape != (m, n) or W0.shape != (n, 1):
                raise ValueError(f"layer {k}'s weights do not match its sizes")
            if W.dtype != dtype or W0.dtype != dtype:
                raise ValueError(f"layer {k}'s weights are {W.dtype}, not {dtype}")
            modules.append(Linear.from_weights(W, W0, backend=backend))
            k += 1
        else:
            cls = BUILTIN[kind]
            layer = cls(**{cls.coef: spec[cls.coef]}) if cls.coef else cls()  # LeakyReLU's slope
            layer.backend = backend
            modules.append(layer)
    if isinstance(loss, dict):
        if loss.get("type") != "NLL":
            raise ValueError(f"the loss must be NLL, got {loss.get('type')!r:.40}")
        backend = _backend(loss.get("backend"))
    elif header.get("version") == 1 and loss == "NLL":  # version 1 named it alone
        backend = _backend(header.get("backend"))
    else:
        raise TypeError(f"loss must be a dict naming NLL, got {loss!r:.40}")
    nll = NLL()
    nll.backend = backend
    return Sequential(modules, nll)


def _optimizer_header(model, optimizer):
    """The JSON of ``optimizer``: its rule, the hyperparameters it uses and its step count."""
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"optimizer must be an Optimizer or None, got {optimizer!r:.60}")
    if optimizer.t and optimizer._model is not model:
        raise ValueError("optimizer holds the state of another model than the one saved")
    used = {name: getattr(optimizer, name) for name in (*HYPER[optimizer.rule], "weight_decay")}
    return {"rule": optimizer.rule, **used, "t": optimizer.t}


def _optimizer(spec, slots, model):
    """The Optimizer a header's ``optimizer`` entry and its ``slots`` describe, bound to
    ``model``; None where there is no entry."""
    if spec is None:
        return None
    if not isinstance(spec, dict):
        raise TypeError(f"optimizer must be a dict, got {spec!r:.40}")
    spec = dict(spec)
    rule, t = spec.pop("rule"), spec.pop("t")
    if type(t) is not int or t < 0:
        raise ValueError(f"the optimizer's step count must be an int >= 0, got {t!r:.20}")
    optimizer = Optimizer(rule, **spec)
    if slots is not None:
        size = sum(m.W.size + m.n for m in model.linear_layers)
        dtype = model.linear_layers[0].W.dtype
        if slots.shape != (2, size) or slots.dtype != dtype:
            raise ValueError(f"the optimizer's state is not 2 by {size} {dtype}")
        optimizer.prepare(model, size, dtype)
        optimizer.slots = slots
    optimizer.t = t
    return optimizer


def _backend(name):
    """A saved backend name: None (the default) or one of ``BACKENDS``."""
    return None if name is None else check_backend(name, "a layer's backend")
