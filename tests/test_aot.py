"""The loops compiled ahead of time (``fastffn.backends.aot``) against the jitted ones."""

import numpy as np
import pytest

import fastffn
from fastffn import packing, runners
from fastffn.backends import LANES, aot, numba_column, numba_loop
from fastffn.layers import HIDDEN_ACTIVATIONS
from fastffn.sequential import network
from fastffn.testing import TRAINING_TOLERANCE

from .test_as_a_new_user import run_python
from .test_compiled import blobs, fit
from .test_training import build, weights


@pytest.fixture
def jitted(monkeypatch):
    """Training on the jitted loop, as where the extension did not build."""
    monkeypatch.setattr(aot, "extension", lambda: None)


def test_the_install_built_the_extension_for_these_sources_and_this_cpu():
    module = aot.extension()
    # "stale" after an edit to a backend module in an editable install: reinstall
    assert module is not None, aot.status()
    assert module.stamp() == aot.stamp()
    assert aot.function("column_steps", np.float64) is not numba_column.column_steps
    from fastffn.backends.numba_loop import sgd_steps

    assert aot.function("sgd_steps", np.float32, plain=False) is not sgd_steps


def ahead_and_jitted(activation, widths, dtype, monkeypatch, seeds, **sgd):
    """The same training on the loop compiled ahead and on the jitted one (as where the
    extension did not build), its weights compared; ``{loop: model}``, ``{loop: (history,
    printed)}``."""
    X, Y = (a.astype(dtype) for a in blobs())
    runs, models = {}, {}
    for loop in ("ahead", "jitted"):
        if loop == "jitted":
            monkeypatch.setattr(aot, "extension", lambda: None)
        models[loop] = build(fastffn, activation, widths, seed=seeds[0], dtype=dtype)
        runs[loop] = fit(models[loop], X, Y, seed=seeds[1], lrate=0.01, **sgd)
    tolerance = TRAINING_TOLERANCE[np.dtype(dtype)]
    for w, w_jit in zip(weights(models["ahead"]), weights(models["jitted"]), strict=True):
        np.testing.assert_allclose(w, w_jit, **tolerance)
    (history, _), (history_jit, _) = runs["ahead"], runs["jitted"]
    assert [(it, acc) for it, _, acc in history] == [(it, acc) for it, _, acc in history_jit]
    every = sgd["every"]
    assert len(history) == (sgd["iters"] // every if every else 0)
    return models, runs


@pytest.mark.parametrize("activation", sorted(c.__name__ for c in HIDDEN_ACTIVATIONS.values()))
@pytest.mark.parametrize("depth", [1, 2, 4])
@pytest.mark.parametrize("every", [None, 40])
def test_compiled_ahead_and_jitted_train_alike(activation, depth, every, dtype, monkeypatch):
    widths = (3, *[7] * (depth - 1), 3)
    models, runs = ahead_and_jitted(activation, widths, dtype, monkeypatch, (depth, depth),
                                    iters=800, every=every)  # fmt: skip
    (_, out), (_, out_jit) = runs["ahead"], runs["jitted"]
    assert [line.split("Loss")[0] for line in out.splitlines()] == [
        line.split("Loss")[0] for line in out_jit.splitlines()
    ]
    X, Y = (a.astype(dtype) for a in blobs())
    assert models["ahead"].accuracy(X, Y) == models["jitted"].accuracy(X, Y)


def test_other_steps_run_jitted():
    """An optimizer's state one sample a step is not compiled ahead; a batch a step is."""
    assert aot.function("column_steps", np.float64, plain=False) is numba_column.column_steps
    model = build(fastffn, "Tanh", (3, 5, 3))
    runner = runners.CompiledRunner(model, *blobs(), fastffn.optimizers.as_optimizer("adam"))
    assert runner.loop(1, None) is numba_column.column_steps
    from fastffn.backends.numba_loop import sgd_steps

    assert runner.loop(8, None) is not sgd_steps and runner.loop(8, 5) is not sgd_steps


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "momentum"])
@pytest.mark.parametrize("every", [None, 40])
def test_the_batch_loop_compiled_ahead_trains_as_the_jitted_one(optimizer, every, dtype,
                                                                monkeypatch):  # fmt: skip
    ahead_and_jitted("Tanh", (3, 16, 16, 3), dtype, monkeypatch, (1, 2), iters=400, every=every,
                     batch_size=8, optimizer=optimizer)  # fmt: skip


def test_an_extension_from_other_sources_is_not_used(monkeypatch):
    aot.extension.cache_clear()
    monkeypatch.setattr(aot, "stamp", lambda: 1234)
    try:
        assert aot.extension() is None
        assert aot.function("correct", np.float32) is numba_loop.correct
    finally:
        aot.extension.cache_clear()


def test_arguments_are_checked_before_the_compiled_code_trusts_them():
    correct = aot.function("correct", np.float64)
    model = build(fastffn, "Tanh", (3, 5, 3))
    ops, shapes, coefs, params = packing.pack(model)
    X, Y = (np.ascontiguousarray(a) for a in blobs())
    with pytest.raises(TypeError, match="correct's argument 4 must be"):
        correct(ops, shapes, coefs, params, np.asfortranarray(X), Y, 64)
    with pytest.raises(TypeError, match="argument 3"):
        correct(ops, shapes, coefs, params.astype(np.float32), X, Y, 64)
    assert correct(ops, shapes, coefs, params, X, Y, 64) == (
        numba_loop.correct(ops, shapes, coefs, params, X, Y, 64)
    )


def test_the_notebooks_job_runs_without_numba_or_its_cache(tmp_path, jitted):
    """A fresh process, an empty cache: nothing imports numba, nothing is compiled or
    written, and the weights are those of the jitted loop."""
    result = run_python(
        """
        import sys
        import numpy as np
        import fastffn
        from fastffn.sequential import network
        X, Y = fastffn.hard()
        np.random.seed(0)
        model = network((2, 10, 10, 2))
        model.sgd(X, Y, 10000, report=False, every=None)
        acc = model.accuracy(X, Y)
        assert "numba" not in sys.modules, "numba was imported"
        np.save(sys.argv[1], model.modules[0].W)
        """.replace("sys.argv[1]", repr(str(tmp_path / "w.npy"))),
        {"NUMBA_CACHE_DIR": str(tmp_path / "cache")},
    )
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "cache").exists()
    np.random.seed(0)
    model = network((2, 10, 10, 2))
    model.sgd(*fastffn.hard(), 10000, report=False, every=None)
    np.testing.assert_allclose(np.load(tmp_path / "w.npy"), model.modules[0].W, rtol=1e-10)


def test_a_sweep_of_any_width_runs_without_numba_or_its_cache(tmp_path, jitted):
    """The sweeps' loop is one for every architecture, compiled at install, as is the batch
    loop that wide models take (width 128): a fresh process sweeps three widths with an
    empty cache, imports no numba, and ends on the jitted loops' weights."""
    script = """
        import sys
        import numpy as np
        import fastffn
        from fastffn.sequential import network
        X, Y = fastffn.hard()
        found = []
        for width in (10, 13, 128):
            result = fastffn.sweep(lambda: network((2, width, width, 2), None), X, Y, iters=300,
                                   lrate=[0.01, 0.02, 0.03], seed=0, batch_size=4)
            found.append(result.models[-1].modules[0].W)
        assert "numba" not in sys.modules, "numba was imported"
        np.save(sys.argv[1], np.concatenate([w.ravel() for w in found]))
        """
    out = tmp_path / "w.npy"
    result = run_python(script.replace("sys.argv[1]", repr(str(out))),
                        {"NUMBA_CACHE_DIR": str(tmp_path / "cache")})  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "cache").exists()
    X, Y = fastffn.hard()
    expected = [
        fastffn.sweep(lambda w=width: network((2, w, w, 2), None), X, Y, iters=300,
                      lrate=[0.01, 0.02, 0.03], seed=0, batch_size=4).models[-1].modules[0].W
        for width in (10, 13, 128)
    ]  # fmt: skip
    np.testing.assert_allclose(np.load(out), np.concatenate([w.ravel() for w in expected]),
                               **TRAINING_TOLERANCE[np.dtype(np.float64)])  # fmt: skip


def test_the_sweeps_loop_compiled_ahead_releases_the_gil_for_its_threads():
    """Two groups on two threads must run side by side: the extension's sweep loop is used
    only where it was compiled to release the GIL (``_numba_private.threaded_exports``)."""
    from fastffn.backends import numba_lanes

    module = aot.extension()
    assert module is not None, aot.status()
    assert module.releases_gil() == 1  # 0: pycc's Flags changed, see _numba_private
    assert aot.function("group_steps", np.float64, threaded=True) is not numba_lanes.group_steps
    import threading
    import time

    ops, shapes, coefs, params = packing.pack(network((2, 10, 10, 2)))
    group = np.repeat(params[:, None], LANES, axis=1)
    X, Y = fastffn.hard()
    XT, YT = np.ascontiguousarray(X.T), np.ascontiguousarray(Y.T)
    steps = aot.function("group_steps", np.float64, threaded=True)
    indices = np.random.default_rng(0).integers(X.shape[1], size=(100_000, 1, LANES))
    lrates, stopped = np.full(LANES, 0.01), np.full(LANES, -1)
    empty = np.empty((0, LANES)), np.empty((0, LANES), dtype=np.int64)
    ticks, during, done = [], [], threading.Event()

    def train():
        start = time.perf_counter()
        steps(ops, shapes, coefs, group, XT, YT, indices, lrates, 1e-300, 0, 0, *empty, stopped)
        during.extend((start, time.perf_counter()))
        done.set()

    thread = threading.Thread(target=train)
    thread.start()
    while not done.is_set():  # Python runs here while the loop runs there
        ticks.append(time.perf_counter())
    thread.join()
    start, end = during
    inside = [start, *(t for t in ticks if start < t < end), end]
    # Held, the GIL leaves Python one gap as long as the call, bar a switch interval (5 ms)
    assert max(np.diff(inside)) < (end - start) / 2, "the compiled loop held the GIL"
