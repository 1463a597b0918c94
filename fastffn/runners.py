"""The runners of ``training.sgd``: who takes a run's steps.

- ``CompiledRunner``: whole runs of steps in one jitted call (numba's
  ``sgd_steps``), with no Python per step, for a model ``packing.compilable``
  says it can run. Importing numba happens here, only when it runs.
- ``LayerRunner``: the notebook's step through the model's own methods, for
  any model, on any backend.
"""

import functools
import threading

import numpy as np

from ._validation import NonFiniteError, all_finite
from .backends import aot
from .layers import NLL, SoftMax, is_builtin
from .packing import attach, pack, samples_as_rows
from .schedule import Diverged, is_record, next_record

#: Products of at least this many multiply-adds take several BLAS threads (OpenBLAS's size).
THREADED_FLOPS = 1 << 20


class LayerRunner:
    """The notebook's SGD step through the model's own methods: any model, any backend."""

    chunk, kind = 1, None  # steps a call (``_loop``); no kind shares its chunk

    def __init__(self, model, X, Y, report, optimizer):
        self.model, self.X, self.Y, self.optimizer = model, X, Y, optimizer
        self.scales, self.losses, self.measures, self.blas = None, [], True, None  # Trainer.run
        # Sequential's own forward skips the data checks sgd made; a user's own runs as written.
        self.forward = model.forward if model._overrides("forward") else model._forward
        loss = model.loss
        self.loss_forward = loss._forward if is_builtin(loss) else loss.forward
        last = model.modules[-1]
        self.fused = (
            type(last) is SoftMax
            and is_builtin(last)
            and type(loss) is NLL
            and is_builtin(loss)
            and not model._overrides("backward")
        )
        # The notebook's sgd prints through print_accuracy: a user's own is called in its place.
        self.prints = report is True and model._overrides("print_accuracy")

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
