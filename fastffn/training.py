"""How one model is trained: ``sgd`` and its ``Trainer``.

``sgd`` checks the arguments once, chooses a runner (``runners``), and runs the
chunk/report loop (``schedule``). A runner takes SGD steps on samples the
``Samples`` stream draws: ``CompiledRunner`` whole runs of steps in one jitted
call, for a model ``packing.compilable`` says it gives what the Python methods
would (built-in layers on the numba backend, no method of the user's own, no
layer used twice, one dtype, ending in SoftMax and NLL); ``LayerRunner`` the
notebook's step through the model's own methods, for any model, on any backend.

One gradient on every path: where a built-in SoftMax feeds the NLL loss, the
two are differentiated together, ``Ypred * sum(Y) - Y`` (``Ypred - Y`` for
one-hot Y), the exact chain rule. The notebook's arithmetic, ``-Y / Ypred``
through the softmax Jacobian, loses the gradient where a probability underflows
to 0; ``SoftMax.backward`` called on its own keeps it.
"""

import time

import numpy as np

from ._threads import BlasThreads
from ._validation import as_count, as_step_size
from .optimizers import as_optimizer
from .packing import compilable
from .runners import CompiledRunner, LayerRunner
from .schedule import MAX_INDICES, Diverged, first_chunk, next_chunk, next_record, print_report


def sgd(
    model, X, Y, iters, lrate, *, batch_size=1, rng=None, report=True, every=250, accuracy=None,
    compiled=True, optimizer="sgd", average=False, batches=None, threads=None, **hyper,
):  # fmt: skip
    """Trains ``model`` by SGD; ``Sequential.sgd`` documents the arguments.

    Returns:
        list: ``(iteration, loss, accuracy)`` every ``every`` iterations.

    """
    trainer = Trainer(model, X, Y, compiled=compiled, optimizer=optimizer, average=average, **hyper)
    return trainer.run(iters, lrate, batch_size=batch_size, rng=rng, report=report, every=every,
                       accuracy=accuracy, batches=batches, threads=threads)  # fmt: skip


class Trainer:
    """A model with its data checked and laid out, and its update rule: for runs of SGD.

    ``sgd`` is one run; a caller that trains in many runs on the same data (an
    epoch at a time, say) checks and lays out the data once here. The model
    must not be changed between runs but by them.

    Attributes:
        losses (ndarray): The loss of each step of the last run (the batch's sum).

    """

    def __init__(self, model, X, Y, *, compiled=True, optimizer="sgd", average=False,
                 sample_weight=None, **hyper):  # fmt: skip
        optimizer = as_optimizer(optimizer, **hyper)
        if not optimizer.plain:
            if model._overrides("sgd_step"):
                raise ValueError(
                    f"optimizer {optimizer.rule!r} (weight_decay {optimizer.weight_decay}) "
                    "updates the weights itself: a model with its own sgd_step can only use "
                    "plain 'sgd'"
                )
            dtypes = {m.W.dtype for m in model.linear_layers}
            if len(dtypes) != 1:
                raise ValueError(
                    f"optimizer {optimizer.rule!r} needs layers of one dtype, got {dtypes}"
                )
            size = sum(m.W.size + m.n for m in model.linear_layers)
            optimizer.prepare(model, size, dtypes.pop())
        if not isinstance(average, bool):
            raise TypeError(f"average must be True or False, got {average!r}")
        self.model, (self.X, self.Y) = model, model.check_data(X, Y)
        self.weight = None
        if sample_weight is not None:  # a sample of weight w counts w times in loss and gradient
            self.weight = as_weights(sample_weight, self.X.shape[1])
            self.Y = self.Y * self.weight.astype(self.Y.dtype)
        self.optimizer, self.average = optimizer, average
        self.compiled = None
        if compiled and compilable(model):
            self.compiled = CompiledRunner(model, self.X, self.Y, optimizer)
        self.losses = np.empty(0)

    def batch_weights(self, indices):
        """Each batch's total sample weight (float64): its size without sample weights."""
        if self.weight is None:
            return np.full(len(indices), float(indices.shape[1]))
        return self.weight[indices].sum(axis=1)

    def scales(self, indices):
        """Each step's factor of its summed gradient (float64): 1, or with ``average`` 1 / the
        batch's weight (0 for a batch of weight 0)."""
        if not self.average:
            return np.ones(len(indices))
        total = self.batch_weights(indices)
        return np.divide(1.0, total, out=np.zeros_like(total), where=total > 0)

    def run(self, iters, lrate, *, batch_size=1, rng=None, report=True, every=250, accuracy=None,
            batches=None, threads=None):  # fmt: skip
        """``iters`` steps from the model's weights and the optimizer's state as they are.

        Returns:
            list: ``(iteration, loss, accuracy)`` every ``every`` iterations.

        """
        iters = as_count("iters", iters, minimum=0)
        lrate = as_step_size("lrate", lrate)
        if self.X.dtype.type(lrate) == 0:
            raise ValueError(f"lrate {lrate} is 0 in the model's dtype, {self.X.dtype}")
        batch_size = as_count("batch_size", batch_size)
        every = None if every is None else as_count("every", every)
        if not (isinstance(report, bool) or callable(report)):
            raise TypeError(f"report must be True, False or a callable, got {report!r}")
        threads = None if threads is None else as_count("threads", threads)
        if not (accuracy is None or isinstance(accuracy, bool)):
            raise TypeError(f"accuracy must be True, False or None, got {accuracy!r}")
        if rng is not None and not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng must be a numpy.random.Generator or None, got {rng!r}")
        n = self.X.shape[1]
        if batches is not None:
            batches = as_batches(batches, iters, batch_size, n)
            if rng is not None:
                raise ValueError("give batches or rng, not both: batches leave nothing to draw")
        runner = self.compiled or LayerRunner(self.model, self.X, self.Y, report, self.optimizer)
        runner.scales, runner.losses = self.scales, []
        blas = runner.blas = BlasThreads(threads) if threads or runner.adapts(batch_size) else None
        # A record's accuracy is a pass over all of X: measured where it is shown, or asked for.
        runner.measures = report is not False if accuracy is None else accuracy
        samples = Samples(n, batch_size, iters, rng, batches)
        try:
            # Overflow is caught as a non-finite loss or gradient; NumPy need not warn too.
            with np.errstate(all="ignore"):
                return _loop(runner, samples, iters, lrate, report, every)
        finally:
            if blas is not None:
                blas.restore()
            self.losses = np.concatenate(runner.losses) if runner.losses else np.empty(0)


def _loop(runner, samples, iters, lrate, report, every):
    """Runs ``iters`` steps in chunks of about CHUNK_SECONDS, recording at it % every == 1.

    The runner keeps the chunk it last measured (its ``chunk``, 1 at first), so a
    Trainer's next run does not start with a one-step call again; a compiled one
    starts with the chunk of the last run of its kind (``_CHUNKS``).

    A callable ``report`` is called at its record's step (so the chunk stops
    there); printed lines are printed after the chunk that recorded them.
    """
    history, it = [], 0
    kind = runner.kind and (*runner.kind, samples.batch_size)  # None layer by layer
    runner.chunk = first_chunk(kind, runner.chunk)
    while it < iters:
        stop = iters
        if callable(report) and every:
            stop = min(iters, next_record(it, every) + 1)  # up to the next record, included
        count = min(stop - it, runner.chunk)
        start = time.perf_counter()
        try:
            records = runner.steps(samples, count, lrate, it, every or 0)
        except Diverged as error:
            error.history = history + error.history
            raise
        runner.chunk = next_chunk(kind, count, start, MAX_INDICES // samples.batch_size)
        it += count
        history += records
        if report is True:
            if records and not runner.prints:  # what Sequential.print_accuracy prints
                print_report(*((i, acc, loss) for i, loss, acc in records))
        elif report:
            for record in records:
                report(*record)
    return history


class Samples:
    """The columns of each step's batch, drawn as the notebook draws them.

    From NumPy's global state, ``np.random.randint(n, size=...)`` whenever steps
    are taken: its stream is the same however the draws are split, so it is the
    notebook's one ``randint(n)`` a step. From a Generator, in blocks of fixed
    size from the first step (its draws depend on how they are split), so every
    path sees the same columns.
    """

    def __init__(self, n, batch_size, iters, rng=None, batches=None):
        self.n, self.batch_size, self.left, self.rng = n, batch_size, iters, rng
        self.block = np.empty((0, batch_size), dtype=np.int64)
        self.given = batches

    def take(self, count):
        """The next ``count`` steps' columns: a count by batch_size int64 array."""
        if self.given is not None:  # the caller's, in order
            part, self.given = self.given[:count], self.given[count:]
            return part
        if self.rng is None:
            if count == self.batch_size == 1:  # the notebook's own draw, three times faster
                return np.array([[np.random.randint(self.n)]], dtype=np.int64)
            return np.random.randint(self.n, size=(count, self.batch_size), dtype=np.int64)
        parts = []
        while count:
            if not len(self.block):
                size = min(self.left, max(1, MAX_INDICES // self.batch_size))
                self.block = self.rng.integers(self.n, size=(size, self.batch_size))
                self.left -= size
            part, self.block = self.block[:count], self.block[count:]
            parts.append(part)
            count -= len(part)
        return parts[0] if len(parts) == 1 else np.concatenate(parts)


def as_batches(batches, iters, batch_size, n):
    """``batches`` checked: an iters by batch_size array of columns of X (0 to n - 1), int64."""
    array = np.asarray(batches)
    if array.dtype.kind not in "iu" or array.shape != (iters, batch_size):
        raise ValueError(
            f"batches must be an iters by batch_size ({iters} by {batch_size}) array of "
            f"column indices, got {array.dtype} of shape {array.shape}"
        )
    if array.size and not (0 <= array.min() and array.max() < n):
        raise ValueError(
            f"batches must hold columns of X, 0 to {n - 1}, got {array.min()} to {array.max()}"
        )
    return np.ascontiguousarray(array, dtype=np.int64)


def as_weights(sample_weight, n):
    """``sample_weight`` checked: n finite numbers >= 0, not all 0, as float64."""
    weight = np.asarray(sample_weight, dtype=np.float64)  # never written: the caller's stays
    if weight.shape != (n,) or not (np.isfinite(weight).all() and (weight >= 0).all()):
        problem = "" if weight.shape != (n,) else " with a negative or non-finite"
        raise ValueError(
            f"sample_weight must be {n} finite numbers >= 0 (one a sample), got shape "
            f"{weight.shape}{problem}"
        )
    if not weight.any():
        raise ValueError("sample_weight must not be all zero")
    return weight
