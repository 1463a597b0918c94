"""asv: training as users run it, import and first-call latency, backend agreement."""

import numpy as np

from fastffn import hard
from fastffn.testing import TRAINING_TOLERANCE, worst_difference

from . import workloads


class NotebookJob:
    """W1: 2-10-10-2 ReLU on hard(), batch 1, 10,000 iterations, no reports."""

    params = (list(workloads.PATHS), ["float64", "float32"])
    param_names = ("path", "dtype")
    timeout = 120

    def setup(self, path, dtype):
        self.run = workloads.notebook_job(path, dtype=dtype)

    def time_sgd(self, path, dtype):
        self.run()


class Reports:
    """W1 on numba with the notebook's report lines every 250 steps (to os.devnull), or none."""

    params = (["on", "off"],)
    param_names = ("reports",)

    def setup(self, reports):
        self.run = workloads.notebook_job_reports(reports == "on")

    def time_sgd(self, reports):
        self.run()


class WidthTable:
    """16-w-w-4 ReLU networks, 2,000 steps at batch 1 and 32, numba and (with the compare
    extra) JAX's jit(fori_loop) of the same steps."""

    params = (list(workloads.WIDTHS), list(workloads.WIDTH_BATCHES), ["numba", "jax"])
    param_names = ("width", "batch", "library")
    timeout = 180

    def setup(self, width, batch, library):
        try:
            if library == "jax":
                self.run = workloads.width_job_jax(width, batch)
            else:
                self.run = workloads.width_job(library, width, batch)
        except ImportError:
            raise NotImplementedError("JAX is not installed") from None

    def time_sgd(self, width, batch, library):
        self.run()


class JAX:
    """W1 and W2 in JAX (the compare extra): jax.jit over lax.fori_loop for W1, a jitted step
    over sequential batches for W2."""

    params = (["notebook job", "MLP epoch float64", "MLP epoch float32"],)
    param_names = ("workload",)
    timeout = 180

    def setup(self, workload):
        try:
            if workload == "notebook job":
                self.run = workloads.notebook_job_jax()
            else:
                self.run = workloads.mlp_epoch_jax(workload.split()[-1])
        except ImportError:
            raise NotImplementedError("JAX is not installed") from None

    def time_sgd(self, workload):
        self.run()


class MLPEpoch:
    """W2: one epoch of 784-256-256-10, batches of 128, 8,192 random samples; "numba-records"
    with sgd's default records (every 250 steps), "BLAS bound" its matrix products alone."""

    params = (["numpy", "numba", "numba-records", "BLAS bound"], ["float64", "float32"])
    param_names = ("path", "dtype")
    timeout = 120

    def setup(self, path, dtype):
        if path == "BLAS bound":
            self.run = workloads.mlp_gemms(dtype)
        elif path == "numba-records":
            self.run = workloads.mlp_epoch("numba", dtype=dtype, every=250)
        else:
            self.run = workloads.mlp_epoch(path, dtype=dtype)

    def time_sgd(self, path, dtype):
        self.run()

    def peakmem_sgd(self, path, dtype):
        self.run()


class WideSweep:
    """16 models of 64-128-128-10 at batch 8, 1,000 steps: a sweep against one after another."""

    params = (["sweep", "one after another"],)
    param_names = ("path",)
    timeout = 180

    def setup(self, path):
        self.run = workloads.wide_sweep_job(path)

    def time_train(self, path):
        self.run()


class BusyMachine:
    """W2 (float64) and W5 (16 models), fastffn's and JAX's, quiet and beside another process
    that keeps one core busy (``workloads.Spinner``, stopped between runs)."""

    params = (list(workloads.BUSY_WORKLOADS), ["numba", "jax"], ["quiet", "busy"])
    param_names = ("workload", "library", "phase")
    timeout = 180

    def setup(self, workload, library, phase):
        if library == "jax":
            try:
                import jax  # noqa: F401
            except ImportError:
                raise NotImplementedError("JAX is not installed") from None  # asv: skipped
        self.run = workloads.BUSY_WORKLOADS[workload][library == "jax"]()
        self.spinner = workloads.Spinner()
        if phase == "busy":
            self.run = self.spinner.beside(self.run)

    def teardown(self, workload, library, phase):
        self.spinner.close()

    def time_train(self, workload, library, phase):
        self.run()


COLD_CACHE = "import os, tempfile; os.environ['NUMBA_CACHE_DIR'] = tempfile.mkdtemp()\n"


class Latency:
    """A fresh interpreter: importing fastffn, and its first sgd call."""

    timeout = 300

    def timeraw_import(self):
        return "import fastffn"

    def timeraw_first_sgd_warm_cache(self):
        return workloads.FIRST_SGD_SCRIPT

    def timeraw_first_sgd_cold_cache(self):
        return COLD_CACHE + workloads.FIRST_SGD_SCRIPT

    def timeraw_first_sgd_cold_cache_loop_jitted(self):
        return COLD_CACHE + workloads.FIRST_SGD_JITTED_SCRIPT


class Agreement:
    """The largest weight difference between backends after 2000 steps of the notebook's job,
    in units of the training tolerance (agreement holds below 1)."""

    params = (["float64", "float32"],)
    param_names = ("dtype",)
    unit = "tolerances"

    def track_weights_numba_vs_numpy(self, dtype):
        X, Y = hard()
        models = {}
        for backend in ("numba", "numpy"):
            models[backend] = workloads.network((2, 10, 10, 2), backend=backend, dtype=dtype)
            np.random.seed(1)
            models[backend].sgd(X, Y, 2000, report=False)
        fast, reference = (
            tuple(w for m in models[b].linear_layers for w in (m.W, m.W0)) for b in models
        )
        return worst_difference(fast, reference, TRAINING_TOLERANCE)


class Sweep:
    """W5: a learning-rate sweep of the notebook's job (seed 0), 10,000 steps at batch 1:
    fastffn.sweep, one model after another, and (the compare extra) JAX's jit(vmap(fori_loop))."""

    params = (list(workloads.SWEEP_MODELS), ["sweep", "one after another", "jax"])
    param_names = ("models", "path")
    timeout = 300

    def setup(self, models, path):
        if path == "one after another" and models > 16:
            raise NotImplementedError("minutes: the 16-model row compares")
        try:
            if path == "jax":
                self.run = workloads.sweep_job_jax(models)
            else:
                self.run = workloads.sweep_job(path, models)
        except ImportError:
            raise NotImplementedError("JAX is not installed") from None

    def time_sweep(self, models, path):
        self.run()


class DaskSweep:
    """The Dask scaling run (``workloads.dask_sweep_job``) on 1 and 2 single-threaded
    worker processes of a LocalCluster (the dask extra)."""

    params = ([1, 2],)
    param_names = ("workers",)
    timeout = 300

    def setup(self, workers):
        try:
            import distributed
        except ImportError:
            raise NotImplementedError("dask.distributed is not installed") from None
        self.cluster = distributed.LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0"
        )
        self.client = distributed.Client(self.cluster)
        self.run = workloads.dask_sweep_job(self.client)

    def teardown(self, workers):
        self.client.close()
        self.cluster.close()

    def time_dask_sweep(self, workers):
        self.run()


class DigitsClassifier:
    """W4: FFNClassifier ("numba") against MLPClassifier on digits (the sklearn extra);
    ``track_`` records each one's held-out accuracy."""

    params = (list(workloads.DIGITS_SOLVERS), ["numba", "scikit-learn"])
    param_names = ("solver", "path")
    timeout = 300

    def setup(self, solver, path):
        try:
            self.run, self.test = workloads.digits_job(path, solver)
        except ImportError:
            raise NotImplementedError("scikit-learn is not installed") from None

    def time_fit(self, solver, path):
        self.run()

    def track_held_out_accuracy(self, solver, path):
        return self.run().score(*self.test)
