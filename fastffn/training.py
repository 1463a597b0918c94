"""How a model is trained: every path, in one place.

``sgd`` checks the arguments once, chooses a runner, and runs the chunk/report
loop. A runner takes SGD steps on samples the ``Samples`` stream draws:

- ``CompiledRunner``: whole runs of steps in one jitted call (numba's
  ``sgd_steps``), with no Python per step. Only for a model ``compilable`` says
  it gives what the Python methods would: built-in layers on the numba backend,
  no method of the user's own, no layer used twice, one dtype, ending in
  SoftMax and NLL. Importing numba happens here, only when it runs.
- ``LayerRunner``: the notebook's step through the model's own methods, for
  any model, on any backend.

One gradient on every path: where a built-in SoftMax feeds the NLL loss, the
two are differentiated together, ``Ypred * sum(Y) - Y`` (``Ypred - Y`` for
one-hot Y), the exact chain rule. The notebook's arithmetic, ``-Y / Ypred``
through the softmax Jacobian, loses the gradient where a probability underflows
to 0; ``SoftMax.backward`` called on its own keeps it.
"""

import functools
import sys
import threading
import time

import numpy as np

from . import backends, sequential
from ._threads import BlasThreads
from ._validation import NonFiniteError, all_finite, as_count, as_step_size
from .backends import BLAS_MIN_FLOPS, OPS, Packed, aot
from .layers import NLL, Linear, SoftMax, is_builtin
from .optimizers import as_optimizer

#: Seconds a compiled chunk aims to run: Ctrl-C lands between chunks.
CHUNK_SECONDS = 0.1
#: Most sample indices (steps times batch) drawn or run at once, to bound memory.
MAX_INDICES = 1 << 20
#: The chunk the last compiled run of a kind measured (``next_chunk``, ``first_chunk``; a compiled
#: sgd's kind is ``CompiledRunner.kind`` and the batch size, a sweep's its loop and
#: groups): a run starts with it, not with a one-step call to measure from (three
#: calls of the compiled loop for W1, not one: 2% of its time).
_CHUNKS = {}
#: Sequential's methods a compiled run stands in for.
METHODS = ("forward", "backward", "sgd_step", "print_accuracy")
#: Products of at least this many multiply-adds take several BLAS threads (OpenBLAS's size).
THREADED_FLOPS = 1 << 20
#: Data smaller than this (in numbers) are transposed by NumPy, not a compiled kernel.
TRANSPOSE_MIN_SIZE = 1 << 16


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
            if overridden(model, "sgd_step"):
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


def first_chunk(kind, default=1):
    """The steps of a run's first chunk: what the last run of ``kind`` measured."""
    return _CHUNKS.get(kind, default)


def next_chunk(kind, count, start, most=None):
    """The steps of about CHUNK_SECONDS, from ``count`` steps begun at ``perf_counter()``
    ``start`` (at most ``most``); kept as the first chunk of the next run of ``kind``
    (a hashable, or None to keep nothing)."""
    rate = count / max(time.perf_counter() - start, 1e-6)
    chunk = max(1, int(rate * CHUNK_SECONDS))
    if most is not None:
        chunk = min(chunk, most)
    if kind is not None:
        _CHUNKS[kind] = chunk
    return chunk


def is_record(it, every):
    """Whether iteration ``it`` records (as the notebook's print_accuracy: it % every == 1)."""
    return every > 0 and it % every == 1 % every


def next_record(it, every):
    """The first iteration from ``it`` on that records (``every`` > 0)."""
    return it + (1 - it) % every


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


def overridden(model, name):
    """Whether the model's method ``name`` is not ``Sequential``'s own."""
    own = getattr(sequential.Sequential, name)
    return getattr(type(model), name) is not own or name in vars(model)


def compilable(model):
    """Whether ``CompiledRunner`` gives what the model's Python methods would."""
    modules, loss = model.modules, model.loss
    if not all(map(is_builtin, [*modules, loss])) or type(loss) is not NLL:
        return False
    if type(modules[-1]) is not SoftMax or SoftMax in map(type, modules[:-1]):
        return False
    linear = model.linear_layers
    if not linear or len({m.W.dtype for m in linear}) > 1:  # one buffer holds one dtype
        return False
    if len({id(m) for m in modules}) < len(modules):  # a layer used twice
        return False
    # A method of the user's own may read what the loop does not keep (activations, gradients).
    if any(overridden(model, name) for name in METHODS):
        return False
    return all((m.backend or backends.get_backend()) == "numba" for m in [*modules, loss])


class LayerRunner:
    """The notebook's SGD step through the model's own methods: any model, any backend."""

    chunk, kind = 1, None  # steps a call (``_loop``); no kind shares its chunk

    def __init__(self, model, X, Y, report, optimizer):
        self.model, self.X, self.Y, self.optimizer = model, X, Y, optimizer
        self.scales, self.losses, self.measures, self.blas = None, [], True, None  # Trainer.run
        # Sequential's own forward skips the data checks sgd made; a user's own runs as written.
        self.forward = model.forward if overridden(model, "forward") else model._forward
        loss = model.loss
        self.loss_forward = loss._forward if is_builtin(loss) else loss.forward
        last = model.modules[-1]
        self.fused = (
            type(last) is SoftMax
            and is_builtin(last)
            and type(loss) is NLL
            and is_builtin(loss)
            and not overridden(model, "backward")
        )
        # The notebook's sgd prints through print_accuracy: a user's own is called in its place.
        self.prints = report is True and overridden(model, "print_accuracy")

    def steps(self, samples, count, lrate, it, every):
        """Takes ``count`` steps from iteration ``it``; returns the records among them.

        Returns:
            list: ``(iteration, loss, accuracy)`` for each step that records: the
                loss of the step and the accuracy before its update, as the
                notebook reports them.

        """
        records = []
        for i in range(it, it + count):
            try:
                record = self.step(samples, lrate, i, every)
            except Diverged as error:
                error.history = records
                raise
            if record is not None:
                records.append(record)
        return records

    def adapts(self, batch_size):
        """Whether its BLAS's threads follow the machine's load: not layer by layer."""
        return False

    def step(self, samples, lrate, it, every):
        if self.blas is None:
            return self._step(samples, lrate, it, every)
        return self.blas.run(lambda: self._step(samples, lrate, it, every))

    def _step(self, samples, lrate, it, every):
        model, X, Y = self.model, self.X, self.Y
        indices = samples.take(1)
        columns, scales = indices[0], self.scales(indices)
        Xb, Yb = np.ascontiguousarray(X[:, columns]), np.ascontiguousarray(Y[:, columns])
        try:
            loss = self.loss_forward(self.forward(Xb), Yb)
        except NonFiniteError:  # the data are finite: a layer's output overflowed
            raise Diverged(it, np.nan) from None
        if self.fused:
            softmax = model.modules[-1]
            dLdZ = softmax.kernels.softmax_nll_backward(softmax.A, model.loss.Y)
            model._backward(dLdZ, model.modules[:-1])
        else:
            model.backward(model.loss.backward())
        grads = [g for m in model.linear_layers for g in (m.dLdW, m.dLdW0)]
        if not (np.isfinite(loss) and all_finite(grads)):
            raise Diverged(it, loss)
        self.losses.append(np.array([loss]))
        record = None
        if is_record(it, every):
            accuracy = None
            if self.measures:
                try:
                    accuracy = float(model._accuracy(X, Y, self.forward))
                except NonFiniteError:  # the data are finite: a layer overflowed
                    raise Diverged(it, np.nan) from None
            record = (it, float(loss), accuracy)
            if self.prints:
                model.print_accuracy(it, X, Y, loss, every)
        if self.optimizer.plain:
            model.sgd_step(float(lrate * scales[0]))  # the notebook's step, or a model's own
        else:
            self.optimizer.update(model, lrate, scales[0])
        return record


class CompiledRunner:
    """A model's layers as op codes and one flat weight buffer, for ``numba_loop.sgd_steps``.

    The Linear layers' ``W`` and ``W0`` become views of a fresh buffer that the
    loop updates in place, so they see each step as it is taken, and arrays the
    user held before stay as they were (as the notebook's ``W = W - ...`` leaves them).
    """

    prints = False
    chunk = 1  # steps a call (``_loop``)

    def __init__(self, model, X, Y, optimizer):
        self.optimizer = optimizer
        self.scales, self.losses, self.measures, self.blas = None, [], True, None  # Trainer.run
        self.packed = pack(model)
        attach(model, self.packed)
        # What a step's time depends on, with the batch size (``_loop``'s chunks).
        ops, shapes, _, params = self.packed
        self.kind = ops.tobytes(), shapes.tobytes(), params.dtype, optimizer.code
        self.X, self.Y = X, Y

    @functools.cached_property
    def rows(self):
        """X.T and Y.T in C order, as ``column_steps`` reads them (each sample's features
        together): one transpose per sgd call, made only for batches of one sample."""
        return samples_as_rows(self.X), samples_as_rows(self.Y)

    def steps(self, samples, count, lrate, it, every):
        """Takes ``count`` steps from iteration ``it``; returns the records among them
        (see ``LayerRunner.steps``), whose accuracy the loop measures as it goes."""
        indices = samples.take(count)
        dtype = self.X.dtype
        losses = np.full(count, np.nan, dtype=dtype)
        hits = np.zeros(count, dtype=np.int64)
        data = self.rows if samples.batch_size == 1 else (self.X, self.Y)
        model = (*self.packed, *data)
        optimizer = self.optimizer
        rates = optimizer.rates(lrate, dtype, self.scales(indices))
        rule = (optimizer.code, None, None)  # the notebook's step
        if not optimizer.plain:
            rule = (optimizer.code, optimizer.slots, optimizer.hyper(dtype))
        arguments = (*model, indices, rates, np.finfo(dtype).tiny, *rule)
        measured = every if self.measures else 0  # unmeasured records are the losses it keeps
        loop = self.loop(samples.batch_size, measured)
        run = functools.partial(loop, *arguments, losses, it, measured or None, hits)
        gathered = None
        if samples.batch_size > 1:  # sgd_steps gathers the batches of many steps at once
            gathered = GATHER.take(count, self.X, self.Y, samples.batch_size)
            run = functools.partial(run, *gathered)
        try:
            done = run() if self.blas is None else self.blas.run(run)
        finally:
            GATHER.give(gathered)
        optimizer.t += done
        self.losses.append(losses[:done])
        recorded = range(next_record(it, every) - it, min(done, count), every) if every else ()
        size = self.X.shape[1]
        records = [(it + i, float(losses[i]), float(hits[i] / size) if measured else None)
                   for i in recorded]  # fmt: skip
        if done < count:
            raise Diverged(it + done, np.nan if hits[done] < 0 else losses[done], records)
        return records

    def adapts(self, batch_size):
        """Whether a product of a step is large enough for the BLAS to take threads for it
        (``THREADED_FLOPS``): then its threads follow the machine's load (``BlasThreads``)."""
        shapes = self.packed.shapes
        return batch_size > 1 and int((shapes[:, 0] * shapes[:, 1]).max()) * batch_size >= (
            THREADED_FLOPS
        )

    def loop(self, batch_size, every):
        """The compiled loop for these steps: ``column_steps`` for one sample a step, else
        ``sgd_steps``; compiled ahead of time where the install built them (``backends.aot``),
        where numba is not even imported."""
        name = "column_steps" if batch_size == 1 else "sgd_steps"
        dtype, plain = self.packed.params.dtype, self.optimizer.plain
        return aot.function(name, dtype, records=bool(every), plain=plain)


class GatherBuffers:
    """Room for ``sgd_steps``'s gathered batches, given to the next call of the same size.

    The batches of G steps (``gather_size``) are gathered together: for W2 in float64 51 MB,
    which NumPy maps afresh for each call and the kernel then zeroes page by page (10-12 ms
    of a 100 ms epoch). One set is kept, the last one given back; a call that finds it
    taken (by another thread) or of another size makes its own.
    """

    def __init__(self):
        self.kept, self.lock = None, threading.Lock()

    def take(self, count, X, Y, b):
        """Xs (G by d by b) and Ys (G by k by b) for ``count`` steps' batches of X, Y."""
        G = gather_size(count, X.shape[1], b)
        shapes = (G, X.shape[0], b), (G, Y.shape[0], b)
        with self.lock:
            kept, self.kept = self.kept, None
        if kept is not None and kept[0].dtype == X.dtype and kept[0].shape[0] >= G:
            if all(a.shape[1:] == shape[1:] for a, shape in zip(kept, shapes, strict=True)):
                return kept[0][:G], kept[1][:G]  # more room than needed: its first G
        return np.empty(shapes[0], X.dtype), np.empty(shapes[1], X.dtype)

    def give(self, gathered):
        """Keeps ``gathered`` (from ``take``, or None) for the next call."""
        if gathered is not None:
            Xs, Ys = (a.base if a.base is not None else a for a in gathered)
            with self.lock:
                self.kept = Xs, Ys


def gather_size(steps, n, b):
    """G, the steps whose batches ``sgd_steps`` gathers at once: all of them, but no more
    numbers than X holds (n columns)."""
    return max(1, min(steps, n // b))


GATHER = GatherBuffers()


def hits_in_loop(model, X, Y):
    """How many columns of X the one-sample loop's counter classifies as Y says.

    For a compilable model small enough that its products at one column are
    loops anyway (each W under ``BLAS_MIN_FLOPS``): the counter the loop's
    records use, already compiled by a batch-1 ``sgd``, so that no layer kernel
    compiles for the final accuracy. X and Y checked, of the model's dtype.

    Returns:
        int or None: The count; None for any other model, or where an output
            overflowed (the layers then count as they do).

    """
    if not compilable(model):
        return None
    if any(m.W.size >= BLAS_MIN_FLOPS for m in model.linear_layers):
        return None
    packed = pack(model)
    column_correct = aot.function("column_correct", packed.params.dtype)
    hits = column_correct(*packed, samples_as_rows(X), samples_as_rows(Y))
    return hits if hits >= 0 else None


def pack(model):
    """A compilable model as the compiled loops take it, its weights in one fresh flat array.

    Returns:
        Packed: Its op codes, shapes, coefficients and weights.

    """
    modules, linear = model.modules, model.linear_layers
    dtype = linear[0].W.dtype
    ops = [OPS.index("linear" if type(m) is Linear else m.kernel) for m in modules]
    shapes = np.zeros((len(modules), 3), dtype=np.int64)
    coefs = np.zeros(len(modules), dtype=dtype)
    width, offset = linear[0].m, 0
    for k, module in enumerate(modules):
        if type(module) is Linear:
            shapes[k] = *module.W.shape, offset
            width = module.n
            offset += module.W.size + module.n
        else:
            shapes[k] = 0, width, 0
            coefs[k] = sum(module.coefficients(dtype))  # its one coefficient, or 0
    params = np.concatenate([a.ravel() for m in linear for a in (m.W, m.W0)])
    return Packed(np.array(ops, dtype=np.int64), shapes, coefs, params)


def attach(model, packed):
    """Makes the Linear layers' W and W0 views of ``packed.params``, laid out as ``pack`` lays
    them."""
    for module, (m, n, offset) in zip(model.modules, packed.shapes, strict=True):
        if type(module) is Linear:
            module._W = packed.params[offset : offset + m * n].reshape(m, n)
            module._W0 = packed.params[offset + m * n : offset + m * n + n].reshape(n, 1)


def samples_as_rows(X):
    """X (d by n) transposed into C order, each sample's features together, as the loops read them.

    Small data by NumPy; larger by numba's cache-blocked ``transposed``.
    """
    if X.size < TRANSPOSE_MIN_SIZE:
        return np.ascontiguousarray(X.T)
    from .backends.numba_loop import transposed

    return transposed(X)


def print_report(*lines):
    """Prints the notebook's report line for each ``(it, acc, loss)`` (what its
    ``print`` of six items prints).

    One write of the lines' formatted text and one flush: 1.3 us a line, where
    ``print``'s six items took 5 us and a flush a line 1.9 us.
    """
    out = sys.stdout
    out.write(
        "".join(f"Iteration = {it} \tAcc = {acc} \tLoss = {loss}\n" for it, acc, loss in lines)
    )
    out.flush()


class Diverged(FloatingPointError):
    """Training stopped at a step whose loss, gradients or outputs were not finite.

    Attributes:
        iteration (int): That step; the model keeps its weights from before it.
        history (list): The records of the steps before it.

    """

    def __init__(self, it, loss, history=(), where="", rate="lrate"):
        super().__init__(
            f"training diverged {where}at iteration {it}: the loss ({loss}) or a gradient is "
            f"not finite; the model keeps its weights from before that step (try a smaller "
            f"{rate})"
        )
        self.iteration, self.loss, self.history = it, loss, list(history)
