"""Whole training runs: the notebook, the numpy backend and the numba backend agree."""

import contextlib
import io
import itertools

import numpy as np
import pytest

import fastffn
from fastffn import NLL, Layer, Linear, Sequential, SoftMax, hard, xor_more
from fastffn.testing import TRAINING_TOLERANCE

from . import notebook

NOTEBOOK_FINAL_CELL = """
X, Y = hard()
nn = Sequential([Linear(2, 10), ReLU(),
                 Linear(10, 10), ReLU(),
                 Linear(10, 2), SoftMax()], NLL())
"""


def build(lib, activation, widths=(2, 10, 10, 2), seed=0, **kwargs):
    """A seeded network of ``lib``'s classes (fastffn or the notebook's)."""
    np.random.seed(seed)
    modules = []
    for m, n in itertools.pairwise(widths):
        modules += [lib.Linear(m, n), getattr(lib, activation)()]
    modules[-1] = lib.SoftMax()
    return lib.Sequential(modules, lib.NLL(), **kwargs)


def train(model, X, Y, iters, seed=0, lrate=0.005):
    """Trains with the global random state seeded; returns the printed lines."""
    np.random.seed(seed)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        model.sgd(X, Y, iters=iters, lrate=lrate)
    return out.getvalue().splitlines()


def weights(model):
    return [w for m in model.modules if hasattr(m, "W") for w in (m.W, m.W0)]


def parse(line):
    """(iteration, accuracy, loss) from a report line."""
    fields = [part.split("=")[1] for part in line.split("\t")]
    return int(fields[0]), float(fields[1]), float(fields[2])


@pytest.mark.parametrize("activation", ["ReLU", "Tanh"])
@pytest.mark.parametrize("seed", [0, 7])
def test_backends_reproduce_the_notebook(activation, seed):
    X, Y = hard()
    reference = build(notebook, activation, seed=seed)
    lines = train(reference, X, Y, 2000, seed=seed)
    assert len(lines) == 8  # iterations 1, 251, ..., 1751
    for backend in ("numpy", "numba"):
        model = build(fastffn, activation, seed=seed, backend=backend)
        ours = train(model, X, Y, 2000, seed=seed)
        for w, w_ref in zip(weights(model), weights(reference), strict=True):
            np.testing.assert_allclose(w, w_ref, **TRAINING_TOLERANCE[np.dtype(np.float64)])
        for line, line_ref in zip(ours, lines, strict=True):
            (it, acc, loss), (it_ref, acc_ref, loss_ref) = parse(line), parse(line_ref)
            assert (it, acc) == (it_ref, acc_ref)
            assert loss == pytest.approx(loss_ref, rel=1e-9, abs=1e-12)


def test_float32_stays_float32_and_backends_agree():
    X, Y = xor_more()
    models = {}
    for backend in ("numpy", "numba"):
        model = build(fastffn, "Tanh", (2, 8, 8, 2), seed=3, backend=backend, dtype="float32")
        train(model, X, Y, 2000, seed=3, lrate=0.05)
        assert all(w.dtype == np.float32 for w in weights(model))
        assert model.forward(X).dtype == np.float32
        models[backend] = model
    for w, w_ref in zip(weights(models["numba"]), weights(models["numpy"]), strict=True):
        np.testing.assert_allclose(w, w_ref, **TRAINING_TOLERANCE[np.dtype(np.float32)])


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_notebook_final_cell_runs_unchanged(backend):
    namespace = {}
    exec("from fastffn import *", namespace)
    with fastffn.use_backend(backend):
        np.random.seed(0)
        exec(NOTEBOOK_FINAL_CELL, namespace)
        nn, X, Y = namespace["nn"], namespace["X"], namespace["Y"]
        lines = train(nn, X, Y, 4000)
    assert [parse(line)[0] for line in lines] == list(range(1, 4000, 250))
    assert nn.accuracy(X, Y) >= 0.9


class Square(Layer):
    """A user's own layer, in plain NumPy."""

    def forward(self, Z):
        self.Z = Z
        return Z**2

    def backward(self, dLdA):
        return 2 * self.Z * dLdA


def test_user_defined_layer_trains_alongside_built_in_ones(backend):
    X, Y = hard()
    np.random.seed(0)
    model = Sequential([Linear(2, 6), Square(), Linear(6, 2), SoftMax()], NLL(), backend=backend)
    before = model.loss.forward(model.forward(X), Y)
    train(model, X, Y, 1000, lrate=0.01)
    assert model.loss.forward(model.forward(X), Y) < before
    assert model.backend == backend


def test_backend_switch():
    np.random.seed(0)
    model = Sequential([Linear(2, 3), SoftMax()], NLL())
    assert model.backend == fastffn.get_backend() == "numba"  # the default it runs on
    assert {m.backend for m in model.layers} == {None}  # each follows the default
    model.backend = "numpy"
    assert [m.backend for m in model.layers] == ["numpy"] * 3
    lone = Linear(2, 3, backend="numpy")
    assert lone.kernels is fastffn.backends.load("numpy")
    with fastffn.use_backend("numpy"):
        assert Linear(2, 3).kernels is fastffn.backends.load("numpy")
    assert fastffn.get_backend() == "numba"
    with pytest.raises(ValueError, match="backend must be one of"):
        fastffn.set_backend("torch")
    with pytest.raises(ValueError, match="backend must be one of"):
        Sequential([Linear(2, 3)], NLL(), backend="jax")


@pytest.mark.parametrize("batch_size", [1, 8])
@pytest.mark.parametrize("compiled", [True, False])
def test_records_measure_the_accuracy_only_where_it_is_shown_or_asked(batch_size, compiled):
    """Issue 24's free history: a record's loss is its step's (computed anyway); its accuracy,
    a pass over all of X, is measured for report=True, a callable report, or accuracy=True."""
    from fastffn.sequential import network
    from fastffn.training import Trainer

    X, Y = hard()
    runs = {}
    for name, options in {
        "quiet": {"report": False},
        "asked": {"report": False, "accuracy": True},
        "callable": {"report": lambda *record: None},
        "refused": {"report": lambda *record: None, "accuracy": False},
    }.items():
        model = network((2, 10, 10, 2), seed=0)
        trainer = Trainer(model, X, Y, compiled=compiled)
        np.random.seed(1)
        runs[name] = trainer.run(600, 0.01, batch_size=batch_size, every=100, **options)
        assert [r[0] for r in runs[name]] == [1, 101, 201, 301, 401, 501]
        assert [r[1] for r in runs[name]] == [float(trainer.losses[i]) for i in range(1, 600, 100)]
    assert all(acc is None for *_, acc in runs["quiet"] + runs["refused"])
    assert runs["asked"] == runs["callable"]
    assert all(0 <= acc <= 1 for *_, acc in runs["asked"])
    assert [r[:2] for r in runs["quiet"]] == [r[:2] for r in runs["asked"]]  # the same steps
    with pytest.raises(TypeError, match="accuracy must be True, False or None"):
        network((2, 3, 2)).sgd(X, Y, 1, accuracy="yes")


def _blas_threads():
    from threadpoolctl import ThreadpoolController

    return {lib.num_threads for lib in ThreadpoolController().select(internal_api="openblas")
            .lib_controllers}  # fmt: skip


@pytest.mark.parametrize("compiled", [True, False])
def test_threads_sets_the_blas_threads_for_the_run_and_restores_them(compiled):
    from fastffn.sequential import network

    rng = np.random.default_rng(0)
    X = rng.standard_normal((256, 512))
    Y = np.eye(4)[:, rng.integers(4, size=512)]
    before = _blas_threads()
    seen = []
    model = network((256, 256, 4), seed=0)
    model.sgd(X, Y, 6, 1e-4, batch_size=64, threads=1, compiled=compiled, every=2,
              report=lambda *record: seen.append(_blas_threads()))  # fmt: skip
    assert seen and all(s == {1} for s in seen)
    assert _blas_threads() == before
    with pytest.raises(ValueError, match="threads must be >= 1"):
        model.sgd(X, Y, 1, batch_size=64, threads=0)


def test_the_blas_threads_follow_the_cpus_other_processes_leave(monkeypatch):
    """BlasThreads chooses, run by run, the CPUs that others leave free as the run starts."""
    import multiprocessing

    from fastffn import _threads

    monkeypatch.setattr(_threads, "default_threads", lambda: 2)
    others = {"now": 0}
    monkeypatch.setattr(_threads, "others_running", lambda: others["now"])
    blas = _threads.BlasThreads()
    for now, threads in ((0, {2}), (1, {1}), (5, {1}), (0, {2})):
        others["now"] = now
        assert blas.run(_blas_threads) == threads
    blas.restore()
    fixed = _threads.BlasThreads(threads=1)
    assert fixed.run(_blas_threads) == {1}
    fixed.restore()
    monkeypatch.undo()
    # The count itself: a process spinning beside this one is one thread more running (the
    # least of a few reads before it: the machine may run something else of its own).
    before = min(_threads.others_running() for _ in range(10))
    spinner = multiprocessing.get_context("fork").Process(target=_spin, daemon=True)
    spinner.start()
    try:
        import time

        time.sleep(0.2)
        assert max(_threads.others_running() for _ in range(10)) >= before + 1
    finally:
        spinner.kill()
        spinner.join()


def test_a_thread_running_for_a_moment_is_not_a_busy_process(monkeypatch):
    """A kernel thread woken for a moment (one read) does not take a BLAS thread away; a
    process runnable at every read does; a quiet machine costs one read."""
    from fastffn import _threads

    for reads, expected, taken in (([1, 0, 1], 0, 2), ([1, 1, 1], 1, 3), ([0, 5, 5], 0, 1)):
        left = list(reads)
        monkeypatch.setattr(_threads, "_others_now", lambda left=left: left.pop(0))
        assert _threads.others_running() == expected
        assert len(reads) - len(left) == taken


def _spin():
    while True:
        pass


def test_gathered_batches_take_kept_memory_only_where_it_fits():
    """runners.GATHER gives the last call's memory again only for the same d, k and b."""
    from fastffn.runners import GatherBuffers
    from fastffn.sequential import network

    pool = GatherBuffers()
    X, Y3, Y4 = np.zeros((5, 100)), np.zeros((3, 100)), np.zeros((4, 100))
    first = pool.take(10, X, Y3, 8)
    assert [a.shape for a in first] == [(10, 5, 8), (10, 3, 8)]
    pool.give(first)
    again = pool.take(4, X, Y3, 8)  # fewer steps: the first rows of the same memory
    assert again[0].base is first[0] and again[0].shape == (4, 5, 8)
    pool.give(again)
    other = pool.take(4, X, Y4, 8)  # another number of classes: memory of its own
    assert other[1].shape == (4, 4, 8) and other[0].base is None
    assert pool.take(4, X, Y3, 8)[0].base is None  # taken: the next call makes its own
    for classes in (3, 4, 3):  # models of other sizes one after another train as alone
        rng = np.random.default_rng(classes)
        Xd, Yd = rng.standard_normal((5, 64)), np.eye(classes)[:, rng.integers(classes, size=64)]
        fast, slow = (network((5, 6, classes), seed=1) for _ in range(2))
        np.random.seed(2)
        fast.sgd(Xd, Yd, 50, 0.01, batch_size=8, report=False)
        np.random.seed(2)
        slow.sgd(Xd, Yd, 50, 0.01, batch_size=8, report=False, compiled=False)
        np.testing.assert_allclose(fast.modules[0].W, slow.modules[0].W, rtol=1e-12, atol=1e-12)
