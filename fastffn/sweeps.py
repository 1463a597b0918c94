"""Many models in one call: grids of learning rates, seeds and batch sizes.

``sweep`` builds every model of the grid as one run after another would (the
global random state seeded, the model built, its samples drawn), then trains
them together: models of one architecture and batch size in one compiled call
of ``backends.numba_lanes``, their weights side by side so that SIMD lanes and
cores work across models (``sweep_groups``), here or on the workers of a Dask
cluster (``sweep_dask``); each model's sample columns drawn as its own ``sgd``
would draw them (``sweep_draws``). A grid
whose models the compiled loop cannot run (``packing.compilable``) is trained
one model after another through ``Sequential.sgd``. Either way each model ends
as training it alone leaves it.
"""

import itertools
import math
import sys
import threading

import numpy as np

from . import sweep_dask
from ._threads import default_threads
from ._validation import as_count, as_seed, as_step_size
from .layers import arguments
from .packing import compilable, samples_as_rows
from .progress import ProgressLine
from .schedule import Diverged
from .sequential import Sequential
from .sweep_draws import Draws, set_stream_state, skip_draws, stream_state
from .sweep_groups import Groups

#: The grid's axes, in the order of its product (the last varies fastest).
AXES = ("lrate", "seed", "batch_size")
#: The most models a grid may hold: past this, building them would exhaust the memory.
MAX_MODELS = 100_000
#: Seeding, building and drawing use NumPy's global state: one sweep at a time.
_GLOBAL_STATE = threading.Lock()


def sweep(
    build, X, Y, *, iters, lrate, seed=None, batch_size=1, every=250, report=False, client=None,
    X_val=None, Y_val=None, threads=None,
):  # fmt: skip
    """Trains one model for each configuration of a grid; each as if trained alone.

    Configuration c gives the model that
    ``np.random.seed(s); net = build(); net.sgd(X, Y, iters, lr, batch_size=b, report=False,
    accuracy=True)``
    gives (``seed=None``: no seeding, the global state drawn from as one run
    after another would draw from it).

    Args:
        build (callable): Takes no argument, returns a new ``Sequential``. Every
            model it returns has the same layers, widths and dtype.
        X (ndarray): The d by n training points.
        Y (ndarray): Their k by n one-hot classes.
        iters (int): SGD steps for each model.
        lrate (float or list): The step size, or a list of them.
        seed (int, None or list): A seed of NumPy's global state before each
            build, or a list of them.
        batch_size (int or list): Samples a step, or a list of them.
        every (int or None): Each model's history records the step's loss and
            the accuracy before its update at every iteration ``it`` with
            ``it % every == 1`` (as ``Sequential.sgd`` with ``accuracy=True``);
            None records nothing.
        report (bool or callable): True shows progress on stderr, one line
            redrawn in place (``progress.ProgressLine``); a callable is called as
            ``report(steps_done, steps_total)``, steps counted over all models.
        client (dask.distributed.Client or None): Trains groups of models on
            the cluster's workers instead of this process's cores.
        X_val, Y_val (ndarray): Held-out points and their one-hot classes (d by
            m, k by m): each trained model's accuracy and mean loss on them are
            recorded, and models are ranked by them (``SweepResult.best``).
        threads (int or None): Threads that train groups of models here (not on a
            cluster): None for ``default_threads()``.

    Returns:
        SweepResult: The models in grid order (``AXES``' product, the last axis
            varying fastest), their configurations and histories.

    """
    iters = as_count("iters", iters, minimum=0)
    every = None if every is None else as_count("every", every)
    if not callable(build):
        raise TypeError(f"build must be a callable returning a Sequential, got {build!r}")
    if not (isinstance(report, bool) or callable(report)):
        raise TypeError(f"report must be True, False or a callable, got {report!r}")
    if (X_val is None) != (Y_val is None):
        raise ValueError("give X_val and Y_val together, or neither")
    threads = default_threads() if threads is None else as_count("threads", threads)
    configs = grid(lrate=lrate, seed=seed, batch_size=batch_size)
    sweep_dask.check_client(client)
    progress = Progress(report, iters * len(configs))
    try:
        result = _train(build, X, Y, configs, iters, every, progress, client, X_val, Y_val,
                        threads)  # fmt: skip
    finally:
        progress.close(finished=sys.exc_info()[0] is None)
    return result


def _train(build, X, Y, configs, iters, every, progress, client, X_val, Y_val, threads):
    """``sweep``'s grid trained, its arguments checked but the data."""
    with _GLOBAL_STATE:
        first = _build(build, configs[0])
        X, Y = first.check_data(X, Y)
        if X_val is not None:
            X_val, Y_val = first.check_data(X_val, Y_val, names=("X_val", "Y_val"))
        if not compilable(first):
            result = _one_after_another(build, first, X, Y, configs, iters, every, progress)
            return result.validate(X_val, Y_val)
        models, starts, after = [first], [], {}
        like = architecture(first)
        for c, config in enumerate(configs):
            if c:
                models.append(_build(build, config, like, first))
            starts.append(stream_state())
            if c + 1 < len(configs) and configs[c + 1]["seed"] is None:  # builds from here
                skip_draws(X.shape[1], iters, config["batch_size"], after)
    result = SweepResult(configs, X, Y)
    data = X, Y, samples_as_rows(X), samples_as_rows(Y)
    for b in dict.fromkeys(c["batch_size"] for c in configs):
        chosen = [i for i, c in enumerate(configs) if c["batch_size"] == b]
        lrates = [configs[i]["lrate"] for i in chosen]
        draws = Draws([starts[i] for i in chosen], X.shape[1], b)
        groups = Groups([models[i] for i in chosen], draws, lrates, data)
        if client is None:
            out = groups.train(iters, every or 0, progress, threads)
        else:
            out = sweep_dask.train(client, groups, iters, every or 0, progress)
        groups.unpack(out, every, result, chosen)
        if chosen[-1] == len(configs) - 1:  # the global state left as the last model's sgd
            with _GLOBAL_STATE:
                set_stream_state(draws.after(iters))
    return result.validate(X_val, Y_val)


def grid(**axes):
    """The configurations of a grid: one dict a combination, in ``AXES``' product order.

    Each axis takes a value (a 0-d array too) or a list (tuple, range, 1-d array) of
    them; learning rates must be finite and positive, seeds None or integers from 0
    to 2**32 - 1, batch sizes integers from 1. A grid of more than ``MAX_MODELS``
    models is refused before any is checked or built.
    """
    checks = {
        "lrate": lambda v: as_step_size("lrate", v),
        "seed": lambda v: None if v is None else as_seed("seed", v),
        "batch_size": lambda v: as_count("batch_size", v),
    }
    values = {}
    for name in AXES:
        value = axes[name]
        if isinstance(value, np.ndarray) and value.ndim == 0:
            value = value.item()  # a scalar, as sgd takes it
        if not isinstance(value, (list, tuple, range, np.ndarray)):
            value = [value]
        if len(value) == 0:
            raise ValueError(f"{name} must be a value or a non-empty list, got {value!r}")
        values[name] = value
    size = math.prod(map(len, values.values()))
    if size > MAX_MODELS:
        sizes = " x ".join(f"{len(v)} {name}" for name, v in values.items())
        raise ValueError(
            f"the grid holds {size} models ({sizes}), more than the {MAX_MODELS} a sweep "
            "trains: train it in parts"
        )
    values = {name: [checks[name](v) for v in value] for name, value in values.items()}
    return [dict(zip(AXES, c, strict=True)) for c in itertools.product(*values.values())]


def _build(build, config, like=None, first=None):
    """Seeds the global state as ``config`` says, then builds a model (checked against
    ``like``, the first model's ``architecture``, and against being ``first`` itself)."""
    if config["seed"] is not None:
        np.random.seed(config["seed"])
    model = build()
    if not isinstance(model, Sequential):
        raise TypeError(f"build must return a Sequential, got {model!r}")
    if first is not None and (model is first or model.layers[0] is first.layers[0]):
        raise ValueError(
            "build must return a new model each call (with new layers): it returned the "
            "first model's again, and every result would be the last one trained"
        )
    if like is not None and architecture(model) != like:
        raise ValueError(
            f"build must return models of one architecture: got {architecture(model)} after {like}"
        )
    return model


def architecture(model):
    """What models trained together share: module types, weight shapes and dtypes, and
    coefficients (LeakyReLU's slope)."""
    return tuple(
        (
            type(m).__name__,
            *((m.W.shape, m.W.dtype) if hasattr(m, "W") else ()),
            *arguments(m).values(),
        )
        for m in [*model.modules, model.loss]
    )


class Progress:
    """Reports the steps done as ``sweep``'s ``report`` asks: True, one line on stderr
    redrawn in place; a callable, ``report(done, total)``; False, nothing."""

    def __init__(self, report, total):
        self.report, self.total, self.done = report, total, 0
        self.line = ProgressLine(total, "steps", delay=0) if report is True else None

    def __call__(self, steps):
        self.done += steps
        if self.line is not None:
            self.line.update(self.done)
        elif self.report:
            self.report(self.done, self.total)

    def close(self, finished):
        if self.line is not None:
            self.line.close(finished)


def _one_after_another(build, first, X, Y, configs, iters, every, progress):
    """The grid through ``Sequential.sgd``, one model at a time (models it cannot compile)."""
    result, like = SweepResult(configs, X, Y), architecture(first)
    for c, config in enumerate(configs):
        model = first if c == 0 else _build(build, config, like, first)
        history, stopped = [], None
        try:
            history = model.sgd(
                X, Y, iters, config["lrate"], batch_size=config["batch_size"],
                report=False, every=every, accuracy=True,  # as the compiled sweep records
            )  # fmt: skip
        except Diverged as error:  # the model keeps its weights from before
            stopped = error.iteration
            history = error.history
        result.set(c, model, history, stopped)
        progress(iters)
    return result


class SweepResult:
    """The models of a sweep and how their training went, in grid order.

    Attributes:
        models (list): The trained ``Sequential`` models.
        configs (list): Each model's configuration, a dict with keys ``AXES``.
        histories (list): Each model's ``(iteration, loss, accuracy)`` records.
        stopped (list): The iteration at which a model's loss or gradients
            stopped being finite (its weights are those from before), else None.
        accuracies (list): Each model's final accuracy on the training data
            (NaN where it stopped), measured when first read: training pays for no
            pass over the data that nobody asked for.
        val_accuracies, val_losses (list or None): Each model's accuracy and mean
            NLL on the held-out data (NaN where it stopped); None without them.

    """

    def __init__(self, configs, X, Y):
        self.configs, size = configs, len(configs)
        self.models, self.histories, self.stopped = [None] * size, [None] * size, [None] * size
        self.val_accuracies = self.val_losses = None
        self._data, self._accuracies = (X, Y), None

    @property
    def accuracies(self):
        if self._accuracies is None:
            pairs = zip(self.models, self.stopped, strict=True)
            X, Y = self._data
            self._accuracies = [np.nan if stop is not None else float(m.accuracy(X, Y))
                                for m, stop in pairs]  # fmt: skip
        return self._accuracies

    def validate(self, X_val, Y_val):
        """Records each model's accuracy and mean loss on checked held-out data; returns self."""
        if X_val is None:
            return self
        scores = [(np.nan, np.nan) if stopped is not None else model.held_out(X_val, Y_val)
                  for model, stopped in zip(self.models, self.stopped, strict=True)]  # fmt: skip
        self.val_accuracies = [float(a) for a, _ in scores]
        self.val_losses = [float(loss) for _, loss in scores]
        return self

    def _rank(self, c):
        """Model c's sort key, best first: held-out accuracy then loss where there are held-out
        data, else training accuracy; stopped models last."""
        if self.val_accuracies is None:
            return (-np.nan_to_num(self.accuracies[c], nan=-1),)
        return (-np.nan_to_num(self.val_accuracies[c], nan=-1),
                np.nan_to_num(self.val_losses[c], nan=np.inf))  # fmt: skip

    def set(self, c, model, history, stopped):
        self.models[c], self.histories[c], self.stopped[c] = model, history, stopped

    def __len__(self):
        return len(self.models)

    @property
    def losses(self):
        """Each model's loss at its last record (NaN where there is none)."""
        return [h[-1][1] if h else np.nan for h in self.histories]

    def best(self):
        """The index of the best model: the most accurate on the held-out data (then the lowest
        held-out loss) where there are any, else on the training data (the first on ties;
        stopped ones last)."""
        return min(range(len(self)), key=self._rank)

    def to_frame(self):
        """The grid as a pandas DataFrame: a row a model, in grid order, columns ``AXES``,
        loss, accuracy, stopped (and val_accuracy, val_loss with held-out data)."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError("SweepResult.to_frame needs pandas: pip install pandas") from None
        columns = {axis: [c[axis] for c in self.configs] for axis in AXES}
        columns.update(loss=self.losses, accuracy=self.accuracies,
                       stopped=pd.array(self.stopped, dtype="Int64"))  # fmt: skip
        if self.val_accuracies is not None:
            columns.update(val_accuracy=self.val_accuracies, val_loss=self.val_losses)
        return pd.DataFrame(columns)

    def table(self, best_first=False):
        """The grid as text: one row a model (configuration, last recorded loss, accuracy).

        Args:
            best_first (bool): Sorts by final accuracy, highest first, instead
                of grid order.

        """
        order = list(range(len(self)))
        if best_first:
            order.sort(key=self._rank)
        held_out = self.val_accuracies is not None
        lines = [f"{'lrate':>10} {'seed':>6} {'batch':>6} {'loss':>12} {'accuracy':>9}"
                 + (f" {'val loss':>12} {'val acc':>9}" if held_out else "")]  # fmt: skip
        for c in order:
            config, stopped = self.configs[c], self.stopped[c]
            accuracy = f"{self.accuracies[c]:9.4f}" if stopped is None else f"stopped at {stopped}"
            if held_out and stopped is None:
                accuracy += f" {self.val_losses[c]:>12.6g} {self.val_accuracies[c]:9.4f}"
            lines.append(
                f"{config['lrate']:>10.4g} {config['seed']!s:>6} {config['batch_size']:>6} "
                f"{self.losses[c]:>12.6g} {accuracy:>9}"
            )
        return "\n".join(lines)

    def __str__(self):
        return self.table()
