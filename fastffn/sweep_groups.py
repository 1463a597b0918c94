"""A sweep's models of one architecture and batch size, trained together on this machine.

``Groups`` packs them side by side, LANES models a group, as the compiled sweep
loop (``backends.numba_lanes``) lays them out; ``train_here`` runs the groups on
threads, a queue each thread takes the next group from (``each_group``); models
too wide for SIMD lanes (``wide``) each take the loop ``sgd`` takes for it instead
(``train_each``). Steps run in chunks (``in_chunks``): progress and Ctrl-C land
between them.
"""

import functools
import math
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np

from .backends import LANES, Packed, aot
from .optimizers import Optimizer
from .packing import attach, pack, samples_as_rows
from .runners import GatherBuffers
from .schedule import MAX_INDICES, first_chunk, next_chunk, next_record

#: Multiply-adds a step (all layers, one model) from which a model trains faster in its own
#: loop than side by side in SIMD lanes (``wide``), where that loop is the one-sample loop
#: or a batch loop of ``BATCH_LOOP_SAMPLES`` or more.
WIDE_FLOPS = 1 << 14
#: From this batch size the batch loop's products run well in BLAS; below (but for batches
#: of one), the lanes stay faster up to four times ``WIDE_FLOPS``.
BATCH_LOOP_SAMPLES = 16


class Groups:
    """Models of one architecture and batch size, packed for ``backends.numba_lanes``.

    Their weights side by side: G groups of M models (the last group padded
    with copies of its last model, whose results are dropped).
    """

    def __init__(self, models, draws, lrates, data):
        self.draws, self.data = draws, data
        count = len(models)
        self.M = LANES
        self.G = math.ceil(count / self.M)
        slots = [min(i, count - 1) for i in range(self.G * self.M)]  # padding repeats the last
        packed = [pack(m) for m in models]
        self.ops, self.shapes, self.coefs = packed[0].ops, packed[0].shapes, packed[0].coefs
        dtype = packed[0].params.dtype
        self.params = side_by_side([packed[i].params for i in slots], self.G)
        self.lrates = np.array([lrates[i] for i in slots], dtype=dtype).reshape(self.G, self.M)
        self.count, self.models = count, models

    @property
    def arrays(self):
        """What the compiled sweep loop takes: the packed model's, the samples as rows, the
        draws and the step sizes."""
        _X, _Y, XT, YT = self.data
        return self.ops, self.shapes, self.coefs, self.params, XT, YT, self.draws, self.lrates

    def train(self, iters, every, progress, threads):
        """Runs every step here, on ``threads`` threads (``every``: 0 records nothing).

        Returns:
            tuple: The weights (as ``params``), the records' losses and hit counts (G by
                records by M) and the iteration each model stopped at (-1: none; G by M).

        """
        X, Y, _XT, _YT = self.data
        per_model = lambda steps: progress(steps * self.count)  # noqa: E731
        if wide(self.shapes, self.draws.b):
            each = (self.ops, self.shapes, self.coefs, self.params, X, Y, self.draws, self.lrates)
            return train_each(*each, self.count, iters, every, per_model, threads)
        return train_here(*self.arrays, iters, every, per_model, threads)

    def unpack(self, out, every, result, chosen):
        """Sets each model's weights from ``out`` (``train``'s) and fills its rows of
        ``result``."""
        params, rec_losses, rec_hits, stopped = out
        n = self.data[0].shape[1]
        for i, c in enumerate(chosen):
            g, q = divmod(i, self.M)
            model, weights = self.models[i], params[g, :, q].copy()
            attach(model, Packed(self.ops, self.shapes, self.coefs, weights))
            stop = int(stopped[g, q])
            history = []
            for r in range(rec_losses.shape[1]):
                it = next_record(0, every) + r * every
                if stop >= 0 and it >= stop:
                    break
                history.append((it, float(rec_losses[g, r, q]), float(rec_hits[g, r, q] / n)))
            result.set(c, model, history, None if stop < 0 else stop)


def aligned(shape, dtype, to=64):
    """An empty C-contiguous array starting at a multiple of ``to`` bytes: a row of a
    group's models (8 float64s) then fills one cache line, not two (a W5 step 15-25%
    faster, in either loop)."""
    count, size = int(np.prod(shape)), np.dtype(dtype).itemsize
    buffer = np.empty(count * size + to, dtype=np.uint8)
    start = -buffer.ctypes.data % to
    return buffer[start : start + count * size].view(dtype).reshape(shape)


def side_by_side(arrays, groups):
    """Equal arrays of S models as G groups of S / G models, the model axis last in memory.

    Returns:
        ndarray: G by (the arrays' shape) by S / G, C-contiguous.

    """
    M = len(arrays) // groups
    out = aligned((groups, *arrays[0].shape, M), arrays[0].dtype)
    for i, array in enumerate(arrays):
        out[i // M, ..., i % M] = array
    return out


def _records(params, records):
    """Arrays for the losses and hit counts of ``records`` records of each model."""
    G, _, M = params.shape
    return np.full((G, records, M), np.nan, params.dtype), np.zeros((G, records, M), np.int64)


def in_chunks(kind, params, draws, models, iters, every, progress, run):
    """Every step in chunks of about ``schedule.CHUNK_SECONDS`` (progress between them,
    Ctrl-C lands there): ``run(it, n, indices, recorded, rec_losses, rec_hits)`` takes each
    chunk's n steps from iteration ``it``, the columns ``draws`` drew for them, the
    iterations that record and the arrays for their records (``_records``).

    Returns:
        tuple: The records' losses and hit counts, G by records by M.
    """
    G, M = params.shape[0], params.shape[2]
    most = max(1, MAX_INDICES // (draws.b * models))  # columns drawn at once, bounded
    losses, hits_at = [], []  # each chunk's records, appended as sgd appends its history
    it, chunk = 0, first_chunk(kind)  # as the last sweep of its kind measured
    while it < iters:
        n = min(chunk, iters - it, most)
        start = time.perf_counter()
        indices = draws.take(n, G, M)
        recorded = range(next_record(it, every), it + n, every) if every else ()
        rec_losses, rec_hits = _records(params, len(recorded))
        losses.append(rec_losses)
        hits_at.append(rec_hits)
        run(it, n, indices, recorded, rec_losses, rec_hits)
        chunk = next_chunk(kind, n, start)
        it += n
        progress(n)
    if not losses:  # no steps
        losses, hits_at = ([a] for a in _records(params, 0))
    return np.concatenate(losses, axis=1), np.concatenate(hits_at, axis=1)


def train_here(ops, shapes, coefs, params, XT, YT, draws, lrates, iters, every, progress, threads):
    """Every group's steps on ``threads`` threads (a group a thread at a time), chunk by chunk
    (``in_chunks``)."""
    G, M = params.shape[0], params.shape[2]
    stopped = np.full((G, M), -1, dtype=np.int64)
    tiny = np.finfo(params.dtype).tiny
    group_steps = aot.function("group_steps", params.dtype, threaded=True)

    def steps(g, it, indices, rec_losses, rec_hits):
        group_steps(
            ops, shapes, coefs, params[g], XT, YT, indices[g], lrates[g], tiny, it, every,
            rec_losses[g], rec_hits[g], stopped[g],
        )  # fmt: skip

    def chunk(it, n, indices, recorded, rec_losses, rec_hits):
        work = functools.partial(steps, it=it, indices=indices, rec_losses=rec_losses,
                                 rec_hits=rec_hits)  # fmt: skip
        each_group(work, G, threads)

    kind = ("lanes", ops.tobytes(), shapes.tobytes(), draws.b, G)
    records = in_chunks(kind, params, draws, G * M, iters, every, progress, chunk)
    return params, *records, stopped


def wide(shapes, b):
    """Whether models of these ``Packed.shapes`` at batch size ``b`` train faster each in its
    own loop (``train_each``) than side by side in SIMD lanes: from ``WIDE_FLOPS``
    multiply-adds a step (the measurements: docs/performance.md, "Sweeps measure no accuracy")."""
    factor = 1 if b == 1 or b >= BATCH_LOOP_SAMPLES else 4
    return int((shapes[:, 0] * shapes[:, 1]).sum()) * b >= WIDE_FLOPS * factor


def train_each(ops, shapes, coefs, params, X, Y, draws, lrates, count, iters, every, progress,
                threads):  # fmt: skip
    """``train_here`` for wide layers: each model in the loop ``sgd`` takes for it (the
    one-sample loop at batch 1, else the batch loop), the models a queue for ``threads``
    threads (the BLAS on one thread each), chunk by chunk; outputs laid out as
    ``train_here``'s. Each model's numbers are those of ``sgd`` on it alone."""
    from ._threads import BlasThreads

    G, _, M = params.shape
    # The loops sgd takes, compiled at install where they were: none compiles here.
    one = draws.b == 1
    name = "column_steps" if one else "sgd_steps"
    loop = aot.function(name, params.dtype, records=bool(every), threaded=True)
    data = (samples_as_rows(X), samples_as_rows(Y)) if one else (X, Y)
    models = [np.ascontiguousarray(params[i // M, :, i % M]) for i in range(count)]
    gathers = [GatherBuffers() for _ in range(count)]  # each model's, kept
    stopped = np.full((G, M), -1, dtype=np.int64)
    tiny = np.finfo(params.dtype).tiny
    plain = Optimizer()  # the notebook's step, as sgd takes it: its rates and code

    def steps(i, it, n, indices, recorded, rec_losses, rec_hits):
        g, q = divmod(i, M)
        if stopped[g, q] >= 0:
            return
        step_losses = np.full(n, np.nan, dtype=params.dtype)
        hits = np.zeros(n, dtype=np.int64)
        rates = plain.rates(lrates[g, q], params.dtype, np.ones(n))
        gathered = () if one else gathers[i].take(n, X, Y, draws.b)  # sgd_steps's room
        done = loop(
            ops, shapes, coefs, models[i], *data, np.ascontiguousarray(indices[g, ..., q]),
            rates, tiny, plain.code, None, None, step_losses, it, every or None, hits, *gathered,
        )  # fmt: skip
        gathers[i].give(gathered or None)
        for r, at in enumerate(recorded):
            if at - it < done:
                rec_losses[g, r, q], rec_hits[g, r, q] = step_losses[at - it], hits[at - it]
        if done < n:
            stopped[g, q] = it + done

    def chunk(*arguments):
        each_group(lambda i: steps(i, *arguments), count, threads)

    blas = BlasThreads(1 if threads > 1 else None)  # the models' threads share the cores
    kind = ("each", ops.tobytes(), shapes.tobytes(), draws.b)
    try:
        records = blas.run(lambda: in_chunks(kind, params, draws, count, iters, every,
                                              progress, chunk))  # fmt: skip
    finally:
        blas.restore()
    for i, model in enumerate(models):
        params[i // M, :, i % M] = model
    return params, *records, stopped


def each_group(work, G, threads):
    """``work(g)`` for each of G groups, on ``min(G, threads)`` threads: this one and
    the pool's (a thread of its own made for each call cost 0.4 ms of a 10 ms W5).
    The groups are a queue each thread takes the next from, so a thread on a busy core
    takes fewer. Returns when every group is done; raises the first error."""
    n = max(1, min(G, threads))
    queue = iter(range(G))  # next() on it is atomic under the GIL

    def share():
        for g in queue:
            work(g)

    futures = [_pool().submit(share) for _ in range(1, n)]
    try:
        share()
    finally:
        wait(futures)  # no group left running, whatever happened here
    for future in futures:
        future.result()


_POOL, _POOL_LOCK = None, threading.Lock()


def _pool():
    """The threads ``each_group`` shares work with, made as they are first needed (again
    in a forked child, where the parent's are gone)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:  # a thread is started only when no idle one takes the task
            _POOL = ThreadPoolExecutor(256, "fastffn-sweep")
        return _POOL


def _forget_pool():
    global _POOL
    _POOL = None


os.register_at_fork(after_in_child=_forget_pool)
