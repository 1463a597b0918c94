"""Many models in one call: grids of learning rates, seeds and batch sizes.

``sweep`` builds every model of the grid as one run after another would (the
global random state seeded, the model built, its samples drawn), then trains
them together: models of one architecture and batch size in one compiled call
of ``backends.numba_sweep``, their weights side by side so that SIMD lanes and
cores work across models, here or on the workers of a Dask cluster. A grid
whose models the compiled loop cannot run (``training.compilable``) is trained
one model after another through ``Sequential.sgd``. Either way each model ends
as training it alone leaves it.
"""

import ctypes
import functools
import itertools
import math
import os
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np

from . import training
from ._threads import default_threads
from ._validation import as_count, as_seed, as_step_size
from .backends import ACCURACY_BLOCK, Packed
from .layers import arguments
from .optimizers import Optimizer
from .progress import ProgressLine
from .sequential import Sequential

#: The grid's axes, in the order of its product (the last varies fastest).
AXES = ("lrate", "seed", "batch_size")
#: Multiply-adds a step (all layers, one model) from which a model trains faster in its own
#: batch loop than side by side in SIMD lanes (``wide``).
WIDE_FLOPS = 1 << 17
#: Seconds a sweep waits for a worker to join a cluster that has none.
WORKER_WAIT = 30
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
    _check_client(client)
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
        if not training.compilable(first):
            result = _one_after_another(build, first, X, Y, configs, iters, every, progress)
            return result.validate(X_val, Y_val)
        models, starts, after = [first], [], {}
        like = architecture(first)
        for c, config in enumerate(configs):
            if c:
                models.append(_build(build, config, like, first))
            starts.append(_stream_state())
            if c + 1 < len(configs) and configs[c + 1]["seed"] is None:  # builds from here
                _skip_draws(X.shape[1], iters, config["batch_size"], after)
    result = SweepResult(configs)
    XT, YT = training.samples_as_rows(X), training.samples_as_rows(Y)
    for b in dict.fromkeys(c["batch_size"] for c in configs):
        chosen = [i for i, c in enumerate(configs) if c["batch_size"] == b]
        lrates = [configs[i]["lrate"] for i in chosen]
        draws = Draws([starts[i] for i in chosen], X.shape[1], b)
        groups = Groups([models[i] for i in chosen], draws, lrates)
        groups.train((X, Y, XT, YT), iters, every, progress, client, threads)
        groups.unpack(result, chosen, X.shape[1])
        if chosen[-1] == len(configs) - 1:  # the global state left as the last model's sgd
            with _GLOBAL_STATE:
                _set_stream_state(draws.after(iters))
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


def _check_client(client):
    if client is None:
        return
    status = getattr(client, "status", None)
    if status is None or not hasattr(client, "submit"):
        raise TypeError(f"client must be a dask.distributed.Client or None, got {client!r}")
    if status != "running":
        raise ValueError(f"client must be a running dask.distributed.Client, got one {status}")
    if not client.nthreads():
        try:
            client.wait_for_workers(1, timeout=WORKER_WAIT)
        except TimeoutError:
            raise TimeoutError(
                f"client: the cluster has no workers, and none joined in {WORKER_WAIT} s"
            ) from None


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


def _skip_draws(n, iters, b, after):
    """Draws from the global state what a model's ``sgd`` draws (iters by b columns of n),
    keeping none: the next model starts where one after another would. ``after`` maps a
    state drawn from before (and b) to the state after it: a grid of one seed draws once."""
    before = _stream_state()
    if isinstance(before, bytes) and (before, b) in after:
        _set_stream_state(after[before, b])
        return
    _draw_through(np.random.randint, n, iters, b)
    if isinstance(before, bytes):
        after[before, b] = _stream_state()


def _draw_through(randint, n, iters, b):
    """``randint(n, size=(iters, b))``'s draws, in blocks of bounded size, none kept."""
    block = max(1, training.MAX_INDICES // b)
    for start in range(0, iters, block):
        randint(n, size=(min(block, iters - start), b), dtype=np.int64)


class Draws:
    """The sample columns of models of one batch size, drawn block by block as each model's
    ``sgd`` would draw them from the global state: memory bounded by the block, whatever
    the iterations (a sweep's columns were once drawn whole, up front).

    Args:
        starts (list): Each model's state of the global generator when its draws begin
            (``_stream_state``); models starting from one state share their draws.
        n (int): The columns to draw from.
        b (int): Columns a step.

    """

    def __init__(self, starts, n, b):
        self.starts, self.n, self.b = list(starts), n, b
        self.generators, self.drawn = None, 0

    def __getstate__(self):  # the states travel (to a Dask worker), not the generators
        return {**self.__dict__, "generators": None, "drawn": 0}

    def part(self, first, last):
        """The draws of models ``first`` to ``last`` - 1, from their starts."""
        return Draws(self.starts[first:last], self.n, self.b)

    def take(self, count, groups, lanes):
        """The next ``count`` steps' columns of every model, laid out for ``numba_sweep``:
        groups by count by b by lanes (the models in ``Groups``' slots)."""
        if self.generators is None:
            unique = {}
            for state in self.starts:  # one generator a distinct start
                if _key(state) not in unique:
                    unique[_key(state)] = _generator(state)
            self.generators = [unique[_key(state)] for state in self.starts]
        out = np.empty((groups, count, self.b, lanes), dtype=np.int64)
        drawn = {}
        for i in range(groups * lanes):  # padding repeats the last model (``Groups``)
            generator = self.generators[min(i, len(self.generators) - 1)]
            if id(generator) not in drawn:
                size = (count, self.b)
                drawn[id(generator)] = generator.randint(self.n, size=size, dtype=np.int64)
            out[i // lanes, ..., i % lanes] = drawn[id(generator)]
        self.drawn += count
        return out

    def after(self, iters):
        """The global state as the last model's ``sgd`` of ``iters`` steps leaves it."""
        if self.generators is not None and self.drawn == iters:
            generator = self.generators[-1]
        else:  # drawn on Dask's workers: drawn here again
            generator = _generator(self.starts[-1])
            _draw_through(generator.randint, self.n, iters, self.b)
        state = generator.get_state()
        return _as_bytes(state) if isinstance(self.starts[-1], bytes) else state


def _key(state):
    return state if isinstance(state, bytes) else repr(state)


def _generator(state):
    """A RandomState that draws as the global one did from ``state`` (``_stream_state``'s)."""
    if isinstance(state, bytes):
        bits = np.random.MT19937()
        ctypes.memmove(bits.ctypes.state_address, state, _MT19937_BYTES)
        return np.random.RandomState(bits)
    generator = np.random.RandomState()
    generator.set_state(state)
    return generator


#: NumPy's C struct of an MT19937 state: 624 uint32 words, then an int position.
_MT19937_BYTES = 624 * 4 + 4


def _stream_state():
    """The bytes of the global generator's MT19937 state (what ``randint`` draws from;
    ``get_state`` adds the cached Gaussian), read in place: 1 us, where ``get_state``
    takes 60-80 us; ``get_state``'s tuple where they do not read as it says."""
    if not _layout_is_numpys():
        return np.random.get_state()
    return ctypes.string_at(np.random.get_bit_generator().ctypes.state_address, _MT19937_BYTES)


def _set_stream_state(state):
    """Writes bytes ``_stream_state`` read back into the global generator (``randint``'s
    part of ``set_state``, which takes 60-80 us); a ``get_state`` tuple by ``set_state``."""
    if not isinstance(state, bytes):
        np.random.set_state(state)
        return
    ctypes.memmove(np.random.get_bit_generator().ctypes.state_address, state, _MT19937_BYTES)


@functools.cache
def _layout_is_numpys():
    """Whether ``_stream_state``'s bytes are the state ``np.random.get_state`` gives."""
    address = np.random.get_bit_generator().ctypes.state_address
    return ctypes.string_at(address, _MT19937_BYTES) == _as_bytes(np.random.get_state())


def _as_bytes(state):
    """A ``get_state`` tuple's MT19937 words and position, laid out as in NumPy's C struct."""
    _, key, pos, *_ = state
    return key.astype(np.uint32).tobytes() + int(pos).to_bytes(4, sys.byteorder, signed=True)


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
    result, like = SweepResult(configs), architecture(first)
    for c, config in enumerate(configs):
        model = first if c == 0 else _build(build, config, like, first)
        history, stopped = [], None
        try:
            history = model.sgd(
                X, Y, iters, config["lrate"], batch_size=config["batch_size"],
                report=False, every=every, accuracy=True,  # as the compiled sweep records
            )  # fmt: skip
        except training.Diverged as error:  # the model keeps its weights from before
            stopped = error.iteration
            history = error.history
        accuracy = None if stopped is not None else model.accuracy(X, Y)  # stopped: NaN
        result.set(c, model, history, stopped, accuracy)
        progress(iters)
    return result


class Groups:
    """Models of one architecture and batch size, packed for ``numba_sweep.kernels``.

    Their weights side by side: G groups of M models (the last group padded
    with copies of its last model, whose results are dropped).
    """

    def __init__(self, models, draws, lrates):
        from .backends import numba_sweep

        self.draws = draws
        count = len(models)
        self.M = numba_sweep.LANES
        self.G = math.ceil(count / self.M)
        slots = [min(i, count - 1) for i in range(self.G * self.M)]  # padding repeats the last
        packed = [training.pack(m) for m in models]
        self.ops, self.shapes, self.coefs = packed[0].ops, packed[0].shapes, packed[0].coefs
        dtype = packed[0].params.dtype
        self.params = side_by_side([packed[i].params for i in slots], self.G)
        self.lrates = np.array([lrates[i] for i in slots], dtype=dtype).reshape(self.G, self.M)
        self.count, self.models = count, models

    def train(self, data, iters, every, progress, client, threads):
        """Runs every step; the outputs land in this object's arrays. ``data``: X and Y as
        checked (d by n, k by n), and as rows (``training.samples_as_rows``)."""
        X, Y, XT, YT = data
        arrays = (self.ops, self.shapes, self.coefs, self.params, XT, YT, self.draws, self.lrates)
        per_model = lambda steps: progress(steps * self.count)  # noqa: E731
        if client is None and wide(self.shapes, self.draws.b):
            each = (self.ops, self.shapes, self.coefs, self.params, X, Y, self.draws, self.lrates)
            out = _train_each(*each, self.count, iters, every or 0, per_model, threads)
        elif client is None:
            out = _train_here(*arrays, iters, every or 0, per_model, threads)
        else:
            out = self._train_on(client, arrays, iters, every or 0, progress)
        self.params, self.rec_losses, self.rec_hits, self.stopped, self.hits = out
        self.every = every

    def _train_on(self, client, arrays, iters, every, progress):
        """The groups in one chunk a worker thread, on the cluster; outputs in group order.

        A Dask Event tells the workers to stop: their tasks look at it between chunks
        (``_train_groups``), so an error or Ctrl-C here stops them within a chunk,
        where cancelling alone left them computing for seconds.
        """
        from distributed import Event, as_completed

        ops, shapes, coefs, params, XT, YT, draws, lrates = arrays
        threads = sum(client.nthreads().values()) or 1
        bounds = np.linspace(0, self.G, min(self.G, threads) + 1).round().astype(int)
        # Once to each worker, not once a task; unhashed, so that a release of an earlier
        # sweep's copy of the same data cannot race with this one.
        data = client.scatter([XT, YT], broadcast=True, hash=False)
        futures, stop = [], Event(f"fastffn-sweep-stop-{uuid.uuid4().hex}", client=client)
        finished = False
        try:
            for a, b in itertools.pairwise(bounds):
                part = draws.part(a * self.M, b * self.M)  # the states, not the columns
                chunk = params[a:b], *data, part, lrates[a:b]
                futures.append(
                    client.submit(
                        _train_groups,
                        ops,
                        shapes,
                        coefs,
                        *chunk,
                        iters,
                        every,
                        stop.name,
                        pure=False,
                    )
                )
            chunks = dict(zip([f.key for f in futures], itertools.pairwise(bounds), strict=True))
            for future in as_completed(futures):
                future.result()  # raises a worker's error here
                a, b = chunks[future.key]
                progress(iters * (min(b * self.M, self.count) - a * self.M))
            parts = client.gather(futures)
            finished = True
        finally:  # an error, or Ctrl-C: nothing of this sweep keeps running
            stop.set() if not finished else stop.clear()  # clear: the scheduler forgets it
            client.cancel(futures)
        return tuple(np.concatenate(p) for p in zip(*parts, strict=True))

    def unpack(self, result, chosen, n):
        """Sets each model's weights and fills its rows of ``result``."""
        every = self.every
        for i, c in enumerate(chosen):
            g, q = divmod(i, self.M)
            model = self.models[i]
            packed = Packed(self.ops, self.shapes, self.coefs, self.params[g, :, q].copy())
            training.attach(model, packed)
            stopped = int(self.stopped[g, q])
            history = []
            for r in range(self.rec_losses.shape[1]):
                it = training.next_record(0, every) + r * every
                if stopped >= 0 and it >= stopped:
                    break
                accuracy = self.rec_hits[g, r, q] / n
                history.append((it, float(self.rec_losses[g, r, q]), float(accuracy)))
            result.set(c, model, history, None if stopped < 0 else stopped, self.hits[g, q] / n)


def side_by_side(arrays, groups):
    """Equal arrays of S models as G groups of S / G models, the model axis last in memory.

    Returns:
        ndarray: G by (the arrays' shape) by S / G, C-contiguous.

    """
    M = len(arrays) // groups
    out = np.empty((groups, *arrays[0].shape, M), dtype=arrays[0].dtype)
    for i, array in enumerate(arrays):
        out[i // M, ..., i % M] = array
    return out


def _records(params, records):
    """Arrays for the losses and hit counts of ``records`` records of each model."""
    G, _, M = params.shape
    return np.full((G, records, M), np.nan, params.dtype), np.zeros((G, records, M), np.int64)


def _in_chunks(kind, params, draws, models, iters, every, progress, run):
    """Every step in chunks of about ``training.CHUNK_SECONDS`` (progress between them,
    Ctrl-C lands there): ``run(it, n, indices, recorded, rec_losses, rec_hits)`` takes each
    chunk's n steps from iteration ``it``, the columns ``draws`` drew for them, the
    iterations that record and the arrays for their records (``_records``).

    Returns:
        tuple: The records' losses and hit counts, G by records by M.
    """
    G, M = params.shape[0], params.shape[2]
    most = max(1, training.MAX_INDICES // (draws.b * models))  # columns drawn at once, bounded
    losses, hits_at = [], []  # each chunk's records, appended as sgd appends its history
    it, chunk = 0, training.first_chunk(kind)  # as the last sweep of its kind measured
    while it < iters:
        n = min(chunk, iters - it, most)
        start = time.perf_counter()
        indices = draws.take(n, G, M)
        recorded = range(training.next_record(it, every), it + n, every) if every else ()
        rec_losses, rec_hits = _records(params, len(recorded))
        losses.append(rec_losses)
        hits_at.append(rec_hits)
        run(it, n, indices, recorded, rec_losses, rec_hits)
        chunk = training.next_chunk(kind, n, start)
        it += n
        progress(n)
    if not losses:  # no steps
        losses, hits_at = ([a] for a in _records(params, 0))
    return np.concatenate(losses, axis=1), np.concatenate(hits_at, axis=1)


def _train_here(ops, shapes, coefs, params, XT, YT, draws, lrates, iters, every, progress, threads):
    """Every group's steps on ``threads`` threads (a group a thread at a time), chunk by chunk
    (``_in_chunks``); then the final accuracies, a group a thread too."""
    from .backends import numba_sweep

    G, M = params.shape[0], params.shape[2]
    stopped = np.full((G, M), -1, dtype=np.int64)
    tiny = np.finfo(params.dtype).tiny
    hits = np.zeros((G, M), dtype=np.int64)
    loop = numba_sweep.kernels(ops, shapes, coefs, draws.b)

    def steps(g, it, indices, rec_losses, rec_hits):
        loop.group_steps(
            params[g], XT, YT, indices[g], lrates[g], tiny, it, every,
            rec_losses[g], rec_hits[g], stopped[g],
        )  # fmt: skip

    def chunk(it, n, indices, recorded, rec_losses, rec_hits):
        work = functools.partial(steps, it=it, indices=indices, rec_losses=rec_losses,
                                 rec_hits=rec_hits)  # fmt: skip
        _each_group(work, G, threads)

    records = _in_chunks((loop, G), params, draws, G * M, iters, every, progress, chunk)
    _each_group(lambda g: loop.group_correct(params[g], XT, YT, hits[g]), G, threads)
    return params, *records, stopped, hits


def wide(shapes, b):
    """Whether models of these ``Packed.shapes`` at batch size ``b`` train faster each in its
    own batch loop (``numba_loop.sgd_steps``, BLAS's products) than side by side in SIMD
    lanes: from ``WIDE_FLOPS`` multiply-adds a step (64-128-128-10 at batch 8: 16 models
    side by side 0.54x as fast as one after another)."""
    return b > 1 and int((shapes[:, 0] * shapes[:, 1]).sum()) * b >= WIDE_FLOPS


def _train_each(ops, shapes, coefs, params, X, Y, draws, lrates, count, iters, every, progress,
                threads):  # fmt: skip
    """``_train_here`` for wide layers: each model in its own batch loop, the models a queue
    for ``threads`` threads (the BLAS on one thread each), chunk by chunk; outputs laid out
    as ``_train_here``'s."""
    from ._threads import BlasThreads
    from .backends.numba_loop import correct, sgd_steps

    G, _, M = params.shape
    models = [np.ascontiguousarray(params[i // M, :, i % M]) for i in range(count)]
    gathers = [training.GatherBuffers() for _ in range(count)]  # each model's, kept
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
        gathered = gathers[i].take(n, X, Y, draws.b)
        done = sgd_steps(
            ops, shapes, coefs, models[i], X, Y, np.ascontiguousarray(indices[g, ..., q]),
            rates, tiny, plain.code, None, None, step_losses, it, every or None, hits, *gathered,
        )  # fmt: skip
        gathers[i].give(gathered)
        for r, at in enumerate(recorded):
            if at - it < done:
                rec_losses[g, r, q], rec_hits[g, r, q] = step_losses[at - it], hits[at - it]
        if done < n:
            stopped[g, q] = it + done

    def chunk(*arguments):
        _each_group(lambda i: steps(i, *arguments), count, threads)

    blas = BlasThreads(1 if threads > 1 else None)  # the models' threads share the cores
    kind = ("each", ops.tobytes(), shapes.tobytes(), draws.b)
    try:
        records = blas.run(lambda: _in_chunks(kind, params, draws, count, iters, every,
                                              progress, chunk))  # fmt: skip
    finally:
        blas.restore()
    hits = np.zeros((G, M), dtype=np.int64)

    def final(i):
        params[i // M, :, i % M] = models[i]
        hits[i // M, i % M] = correct(ops, shapes, coefs, models[i], X, Y, ACCURACY_BLOCK)

    _each_group(final, count, threads)
    return params, *records, stopped, hits


def _each_group(work, G, threads):
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
    """The threads ``_each_group`` shares work with, made as they are first needed (again
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


class Stopped(Exception):
    """A sweep's client stopped it (``Groups._train_on``)."""


def _train_groups(ops, shapes, coefs, params, XT, YT, draws, lrates, iters, every, stop):
    """``_train_here`` on a Dask worker thread, on that thread alone, until the Event named
    ``stop`` is set (checked between chunks, at most every ``STOP_CHECK`` seconds)."""
    from distributed import Event

    event, checked = Event(stop), [time.perf_counter()]

    def check(steps):
        if time.perf_counter() - checked[0] >= STOP_CHECK:
            checked[0] = time.perf_counter()
            if event.is_set():
                raise Stopped(stop)

    arrays = ops, shapes, coefs, params, XT, YT, draws, lrates
    return _train_here(*arrays, iters, every, check, threads=1)


#: Seconds between a Dask task's looks at its stop Event (a call to the scheduler).
STOP_CHECK = 0.25


class SweepResult:
    """The models of a sweep and how their training went, in grid order.

    Attributes:
        models (list): The trained ``Sequential`` models.
        configs (list): Each model's configuration, a dict with keys ``AXES``.
        histories (list): Each model's ``(iteration, loss, accuracy)`` records.
        stopped (list): The iteration at which a model's loss or gradients
            stopped being finite (its weights are those from before), else None.
        accuracies (list): Each model's final accuracy on the training data
            (NaN where it stopped).
        val_accuracies, val_losses (list or None): Each model's accuracy and mean
            NLL on the held-out data (NaN where it stopped); None without them.

    """

    def __init__(self, configs):
        self.configs, size = configs, len(configs)
        self.models, self.histories = [None] * size, [None] * size
        self.stopped, self.accuracies = [None] * size, [None] * size
        self.val_accuracies = self.val_losses = None

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

    def set(self, c, model, history, stopped, accuracy):
        self.models[c], self.histories[c], self.stopped[c] = model, history, stopped
        self.accuracies[c] = float(accuracy) if stopped is None else np.nan

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
