"""Saving and loading models: one ``.npz`` file, no pickles, written atomically.

The file holds the architecture (as JSON text), the dtype, the backend and
every Linear layer's W and W0. It is read with ``allow_pickle=False``, so
loading a file can never run code. A save writes a temporary file beside the
target and renames it over the target, so a save that is interrupted leaves the
previous file as it was.
"""

import json
import os
import tempfile
import zipfile

import numpy as np

from .layers import NLL, Linear, ReLU, SoftMax, Tanh

FORMAT = "fastffn-model"
VERSION = 1
LAYERS = {cls.__name__: cls for cls in (Linear, Tanh, ReLU, SoftMax)}


def save(model, path):
    """Writes ``model`` to ``path`` (a ``.npz`` file), replacing it atomically.

    Args:
        model (Sequential): A model of built-in layers (Linear, Tanh, ReLU,
            SoftMax) with the NLL loss.
        path (str or PathLike): Where to write.

    Raises:
        TypeError: The model holds a layer that is not built in.

    """
    for module in [*model.modules, model.loss]:
        if type(module) not in (*LAYERS.values(), NLL):
            raise TypeError(
                f"model: cannot save a {type(module).__name__} layer; only "
                f"{', '.join(LAYERS)} and NLL can be saved"
            )
    header = {
        "format": FORMAT,
        "version": VERSION,
        "layers": [
            {"type": type(m).__name__, **({"m": m.m, "n": m.n} if type(m) is Linear else {})}
            for m in model.modules
        ],
        "loss": "NLL",
        "dtype": model.dtype.name,
        "backend": model.backend,
    }
    arrays = {"header": np.array(json.dumps(header))}
    for k, m in enumerate(model.linear_layers):
        arrays[f"W{k}"], arrays[f"W0{k}"] = m.W, m.W0

    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".fastffn-", suffix=".npz.tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def load(path):
    """Reads a model written by ``save``.

    Args:
        path (str or PathLike): The ``.npz`` file.

    Returns:
        Sequential: The model, with the saved dtype, backend and weights; its
            predictions are bit-identical to the saved model's.

    Raises:
        FileNotFoundError: There is no such file.
        ValueError: The file is not a fastffn model (corrupt, truncated, another
            format) or was written by another version of the format.

    """
    from .sequential import Sequential

    try:
        with np.load(path, allow_pickle=False) as data:
            header = json.loads(str(data["header"]))
            arrays = {key: data[key] for key in data.files}
    except FileNotFoundError:
        raise
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        raise ValueError(f"{path} is not a readable fastffn model file: {err}") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ValueError(f"{path} is not a fastffn model file")
    if header.get("version") != VERSION:
        raise ValueError(
            f"{path} is a fastffn model of format version {header.get('version')}; "
            f"this fastffn reads version {VERSION}"
        )
    try:
        modules, k = [], 0
        for spec in header["layers"]:
            if spec["type"] == "Linear":
                W, W0 = arrays[f"W{k}"], arrays[f"W0{k}"]
                if W.shape != (spec["m"], spec["n"]) or W0.shape != (spec["n"], 1):
                    raise ValueError(f"layer {k}'s weights do not match its sizes")
                modules.append(Linear.from_weights(W, W0))
                k += 1
            else:
                modules.append(LAYERS[spec["type"]]())
        return Sequential(modules, NLL(), backend=header["backend"], dtype=header["dtype"])
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{path} holds an inconsistent fastffn model: {err!r}") from None
