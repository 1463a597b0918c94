"""pytest-benchmark: every workload on every backend, side by side per group.

Skipped in the normal run (``--benchmark-skip`` in pyproject.toml); CI runs
``pytest tests/benchmarks --benchmark-only --benchmark-json=benchmark.json``
and ``benchmarks/ratios.py`` turns the JSON into a table of speed-ups. Each
benchmark's ``extra_info`` names its workload and backend; ``gate`` marks the
ones where the numba backend must not be slower than the reference.
"""

import functools
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest

from benchmarks import workloads
from fastffn import SoftMax, backends, hard
from fastffn.backends import BACKENDS
from fastffn.testing import KERNELS, TRAINING_TOLERANCE

from .. import notebook

# Every kernel at the notebook's size (10 wide, batch 1) and an MLP's (256 wide, batch 128).
KERNEL_SIZES = {"notebook": (10, 10, 1), "mlp": (256, 256, 128)}
# W3: softmax backward alone, b = 128.
SOFTMAX_CLASSES = (10, 100, 1000)


def measure(benchmark, run, workload, backend, gate=False):
    benchmark.group = workload
    benchmark.extra_info.update(workload=workload, backend=backend, gate=gate)
    return benchmark(run)


def measure_in_turns(benchmark, runs, workload, gate=False, turn=0.005):
    """Times the paths of ``runs`` ({path: run}) in turns in one benchmark, each for about
    ``turn`` seconds of calls a round; each path's time a call (its fastest turn's mean)
    goes to extra_info's "paths", which ratios.py reads. As a benchmark each, the paths
    ran seconds apart, and this machine's speed moves by up to 2x from second to
    second; turns of many calls keep each path's caches warm for it."""
    calls, times = {}, {path: [] for path in runs}
    for path, run in runs.items():
        start = time.perf_counter()
        run()
        calls[path] = max(1, int(turn / (time.perf_counter() - start)))

    def in_turns():
        for path, run in runs.items():
            start = time.perf_counter()
            for _ in range(calls[path]):
                run()
            times[path].append((time.perf_counter() - start) / calls[path])

    measure(benchmark, in_turns, workload, " and ".join(runs), gate)
    benchmark.extra_info["paths"] = {path: min(seconds) for path, seconds in times.items()}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("size", KERNEL_SIZES)
@pytest.mark.parametrize("name", KERNELS)
def test_kernel(benchmark, name, size, dtype):
    """Each kernel of the table on every backend, the backends in turns."""
    m, n, b = KERNEL_SIZES[size]
    runs = {bk: workloads.kernel_call(name, bk, m, n, b, np.dtype(dtype)) for bk in BACKENDS}
    measure_in_turns(benchmark, runs, f"{name} m={m} n={n} b={b} {dtype}")
    # A backend may take the reference's own function where nothing beats it (tanh_forward
    # where NumPy's tanh is AVX-512): the table then says so beside the ratio, a tie.
    functions = {getattr(backends.load(bk), name) for bk in BACKENDS}
    benchmark.extra_info["same_function"] = len(functions) == 1


@pytest.mark.parametrize("size", KERNEL_SIZES)
@pytest.mark.parametrize("name", workloads.functional_calls())
def test_functional(benchmark, name, size):
    """Each fastffn.functional function, its checks included, beside its NumPy formula."""
    m, n, b = KERNEL_SIZES[size]
    function, args, formula = workloads.functional_calls(np.float64, m, n, b)[name]
    runs = {"numba": functools.partial(function, *args), "the NumPy formula": formula}
    measure_in_turns(benchmark, runs, f"functional.{name} m={m} n={n} b={b}")


@pytest.mark.parametrize("classes", SOFTMAX_CLASSES)
def test_softmax_backward(benchmark, classes):
    runs = {bk: workloads.kernel_call("softmax_backward", bk, 1, classes, 128) for bk in BACKENDS}
    workload = f"W3 softmax_backward n={classes} b=128"
    measure_in_turns(benchmark, runs, workload, gate=classes >= 100)


@pytest.mark.parametrize("path", workloads.PATHS)
def test_notebook_job(benchmark, path):
    run = workloads.notebook_job(path)
    model = measure(benchmark, run, "W1 notebook job 2-10-10-2 b=1 x10000", path, gate=True)
    assert np.isfinite(model.modules[0].W).all()


def test_notebook_job_reports(benchmark):
    """W1 with the notebook's report lines every 250 steps against none ("numba" is on),
    in turns of one run each."""
    runs = {"numba": workloads.notebook_job_reports(True)}
    runs["reports off"] = workloads.notebook_job_reports(False)
    measure_in_turns(benchmark, runs, "W1 with report lines every 250 (numba: on)", turn=0)


def test_notebook_job_verbatim(benchmark):
    """The notebook's own code (tests/notebook.py), same seeds: what users came from."""
    X, Y = hard()

    def run():
        np.random.seed(0)
        model = notebook.Sequential(
            [notebook.Linear(2, 10), notebook.ReLU(), notebook.Linear(10, 10), notebook.ReLU(),
             notebook.Linear(10, 2), notebook.SoftMax()], notebook.NLL(),
        )  # fmt: skip
        model.print_accuracy = lambda *args, **kwargs: None  # reporting off, as in the others
        np.random.seed(1)
        model.sgd(X, Y, iters=workloads.NOTEBOOK_ITERS)
        return model

    model = measure(benchmark, run, "W1 notebook job 2-10-10-2 b=1 x10000", "notebook")
    ours = workloads.notebook_job("numba")()
    for m, m_ours in zip(model.modules[::2], ours.linear_layers, strict=True):
        np.testing.assert_allclose(m.W, m_ours.W, **TRAINING_TOLERANCE[m.W.dtype])


def assert_same_weights(params, model):
    """JAX's weights against ours, to the training tolerance of their dtype."""
    for (W, W0), m in zip(params, model.linear_layers, strict=True):
        tolerance = TRAINING_TOLERANCE[m.W.dtype]
        np.testing.assert_allclose(np.asarray(W), m.W, **tolerance)
        np.testing.assert_allclose(np.asarray(W0), m.W0, **tolerance)


def test_notebook_job_jax(benchmark):
    """The same steps in JAX (jit over fori_loop), where JAX is installed; not a dependency."""
    pytest.importorskip("jax")
    run = workloads.notebook_job_jax()
    params = measure(benchmark, run, "W1 notebook job 2-10-10-2 b=1 x10000", "jax")
    assert_same_weights(params, workloads.notebook_job("numba")())


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_mlp_epoch_jax(benchmark, dtype):
    """JAX's step over sequential batches (ours draws random ones): the same work, other samples."""
    pytest.importorskip("jax")
    run = workloads.mlp_epoch_jax(dtype)
    params = measure(benchmark, run, f"W2 MLP 784-256-256-10 b=128 epoch {dtype}", "jax")
    ours = workloads.mlp_epoch("numba", dtype)()
    for (W, _), m in zip(params, ours.linear_layers, strict=True):
        assert W.shape == m.W.shape and W.dtype == m.W.dtype and np.isfinite(W).all()


@pytest.mark.parametrize("path", ["numba", "jax"])
@pytest.mark.parametrize("batch_size", workloads.WIDTH_BATCHES)
@pytest.mark.parametrize("width", workloads.WIDTHS)
def test_width_table(benchmark, width, batch_size, path):
    """16-w-w-4 ReLU networks against JAX, where JAX is installed (the same steps)."""
    if path == "jax":
        pytest.importorskip("jax")
        run = workloads.width_job_jax(width, batch_size)
    else:
        run = workloads.width_job(path, width, batch_size)
    workload = f"widths 16-{width}-{width}-4 b={batch_size} x{workloads.WIDTH_ITERS}"
    result = measure(benchmark, run, workload, path)
    if path == "jax":
        assert_same_weights(result, workloads.width_job("numba", width, batch_size)())


@pytest.mark.parametrize("path", ["numpy", "numba", "BLAS bound"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_mlp_epoch(benchmark, dtype, path):
    """W2 per path; "BLAS bound" times its epoch's matrix products alone (``mlp_gemms``)."""
    workload = f"W2 MLP 784-256-256-10 b=128 epoch {dtype}"
    if path == "BLAS bound":
        measure(benchmark, workloads.mlp_gemms(dtype), workload, path)
        return
    model = measure(benchmark, workloads.mlp_epoch(path, dtype=dtype), workload, path)
    assert model.dtype == dtype


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_mlp_epoch_default_records(benchmark, dtype):
    """W2 with sgd's default records (every 250 steps: the step's loss, no accuracy) against
    none, in turns: the records cost nothing the steps have not computed."""
    runs = {"numba": workloads.mlp_epoch("numba", dtype=dtype, every=250)}
    runs["every=None"] = workloads.mlp_epoch("numba", dtype=dtype)
    workload = f"W2 {dtype} with sgd's default records (numba: every=250)"
    measure_in_turns(benchmark, runs, workload, turn=0)


@pytest.mark.parametrize(("cache", "jitted"), [("warm", False), ("cold", False), ("cold", True)])
def test_first_call(benchmark, cache, jitted):
    """A fresh interpreter's import and first sgd call, compile cache warm or cold (and
    cold without the loop compiled at install: what jitting it costs)."""
    script = workloads.FIRST_SGD_JITTED_SCRIPT if jitted else workloads.FIRST_SGD_SCRIPT
    with tempfile.TemporaryDirectory() as warm_dir:

        def run():
            cache_dir = warm_dir if cache == "warm" else tempfile.mkdtemp()
            env = {**os.environ, "NUMBA_CACHE_DIR": cache_dir}
            subprocess.run([sys.executable, "-c", script], env=env, check=True)

        run()  # fills the warm cache
        benchmark.group = "first sgd call in a fresh process (notebook job)"
        backend = f"numba, {cache} cache" + (", loop jitted" if jitted else "")
        benchmark.extra_info.update(workload=benchmark.group, backend=backend)
        benchmark.pedantic(run, rounds=3 if cache == "warm" else 1)


@pytest.mark.parametrize("path", ["sweep", "one after another"])
def test_wide_sweep(benchmark, path):
    """16 models of 64-128-128-10 at batch 8: each in its own batch loop on the threads."""
    backend = "numba" if path == "sweep" else path  # the table's "numba" column: fastffn.sweep
    models = measure(benchmark, workloads.wide_sweep_job(path),
                     "W5 wide: 16 models of 64-128-128-10 b=8 x1000", backend)  # fmt: skip
    assert len(models) == 16


@pytest.mark.parametrize("library", ["numba", "jax"])
@pytest.mark.parametrize("workload", list(workloads.BUSY_WORKLOADS))
def test_busy_machine(benchmark, workload, library):
    """W2 and W5 quiet and beside one process that keeps a core busy, in turns: each
    library's slowdown (ratios.py prints them side by side)."""
    if library == "jax":
        pytest.importorskip("jax")
    run = workloads.BUSY_WORKLOADS[workload][library == "jax"]()
    spinner = workloads.Spinner()
    try:
        runs = {"quiet": run, "busy": spinner.beside(run)}
        measure_in_turns(benchmark, runs, f"{workload} beside a busy process ({library})", turn=0)
    finally:
        spinner.close()


@pytest.mark.parametrize("path", ["numpy", "numba", "notebook"])
def test_softmax_layer_backward(benchmark, path):
    """W3 as a user calls it: SoftMax.backward on a layer (the notebook's own class too)."""
    rng = np.random.default_rng(0)
    Z, dLdA = rng.standard_normal((100, 128)) * 3, rng.standard_normal((100, 128))
    layer = notebook.SoftMax() if path == "notebook" else SoftMax()
    if path != "notebook":
        layer.backend = path
    layer.forward(Z)
    expected = notebook.SoftMax()
    expected.forward(Z)
    result = measure(
        benchmark, lambda: layer.backward(dLdA), "W3 SoftMax.backward n=100 b=128", path
    )
    np.testing.assert_allclose(result, expected.backward(dLdA), **TRAINING_TOLERANCE[result.dtype])


@pytest.mark.parametrize("path", ["sweep", "one after another", "jax"])
@pytest.mark.parametrize("models", workloads.SWEEP_MODELS)
def test_sweep(benchmark, models, path):
    """W5: a learning-rate sweep of the notebook's job; JAX's jit(vmap(fori_loop)) where
    JAX is installed. The 256-model grid is not run one after another (minutes)."""
    if path == "jax":
        pytest.importorskip("jax")
        run = workloads.sweep_job_jax(models)
    elif path == "one after another" and models > 16:
        pytest.skip("256 models one after another take minutes; the 16-model row compares")
    else:
        run = workloads.sweep_job(path, models)
    backend = "numba" if path == "sweep" else path  # the table's "numba" column: fastffn.sweep
    result = measure(benchmark, run, f"W5 sweep of {models} notebook jobs x10000", backend)
    if path == "jax":
        ours = workloads.sweep_job("sweep", models)()
        for q in (0, models - 1):
            one = [(W[q], W0[q][:, None]) for W, W0 in result]
            assert_same_weights(one, ours[q])
    else:
        assert len(result) == models


@pytest.mark.parametrize("path", ["numba", "scikit-learn"])
@pytest.mark.parametrize("solver", list(workloads.DIGITS_SOLVERS))
def test_digits_classifier(benchmark, solver, path):
    """W4: FFNClassifier against MLPClassifier on digits, the same hyperparameters."""
    pytest.importorskip("sklearn")
    run, (X_test, y_test) = workloads.digits_job(path, solver)
    workload = f"W4 digits 64-64-10 b=32 x20 epochs, {solver}"
    model = measure(benchmark, run, workload, path)
    benchmark.extra_info["held-out accuracy"] = accuracy = model.score(X_test, y_test)
    assert accuracy > 0.93


@pytest.mark.parametrize("workers", [1, 2])
def test_dask_sweep(benchmark, workers):
    """The Dask scaling run: one grid on 1 and on 2 single-threaded worker processes.

    Last in the file: its worker processes may still be exiting after the cluster
    closes, and would slow whatever is timed next.
    """
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(
        n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0"
    )
    with cluster, distributed.Client(cluster) as client:
        run = workloads.dask_sweep_job(client)
        rates, seeds = workloads.DASK_GRID
        workload = f"Dask sweep of {rates * seeds} 64-64-64-10 nets x{workloads.DASK_ITERS}"
        benchmark.group = workload
        benchmark.extra_info.update(workload=workload, backend=f"{workers} worker(s)")
        result = benchmark.pedantic(run, rounds=3)
    assert np.nanmax(result.accuracies) > 0.9
