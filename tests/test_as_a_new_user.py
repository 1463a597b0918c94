"""What a new user met: each test reproduces one report and checks what the user expects."""

import contextlib
import io
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

import fastffn
from fastffn import NLL, Layer, Linear, ReLU, Sequential, SoftMax, Tanh, hard
from fastffn.packing import compilable
from fastffn.sequential import ACCURACY_BLOCK, network
from fastffn.testing import TRAINING_TOLERANCE

from .test_training import build, weights

PATHS = {  # name -> (backend, compiled)
    "numpy": ("numpy", True),
    "numba-layers": ("numba", False),
    "numba": ("numba", True),
}


def train_on_every_path(make, X, Y, seed=0, **sgd):
    """Trains ``make()`` along each path of PATHS with the same seed; returns the models."""
    models = {}
    for path, (backend, compiled) in PATHS.items():
        np.random.seed(seed)
        model = make()
        model.backend = backend
        np.random.seed(seed)
        with contextlib.redirect_stdout(io.StringIO()):
            model.sgd(X, Y, compiled=compiled, **sgd)
        models[path] = model
    return models


def assert_same_weights(models, dtype=np.float64):
    reference = weights(models["numpy"])
    for path, model in models.items():
        for w, w_ref in zip(weights(model), reference, strict=True):
            np.testing.assert_allclose(
                w, w_ref, **TRAINING_TOLERANCE[np.dtype(dtype)], err_msg=path
            )


def run_python(code, env=None, **kwargs):
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **(env or {})},
        **kwargs,
    )


# --- 1: the compile cache lives outside the package ---------------------------


def test_the_compile_cache_is_written_outside_the_package(tmp_path):
    package = os.path.dirname(fastffn.__file__)
    before = {os.path.join(d, f) for d, _, fs in os.walk(package) for f in fs}
    env = {"XDG_CACHE_HOME": str(tmp_path), "NUMBA_CACHE_DIR": ""}
    result = run_python(
        """
        import fastffn
        from fastffn.sequential import network
        X, Y = fastffn.hard()
        model = network((2, 3, 2), backend="numba")
        model.sgd(X, Y, 10, report=False, batch_size=4)  # compiled at install
        model.forward(X)  # the layers' kernels compile at first use
        """,
        env,
    )
    assert result.returncode == 0, result.stderr
    after = {os.path.join(d, f) for d, _, fs in os.walk(package) for f in fs}
    assert not [f for f in after - before if f.endswith((".nbi", ".nbc"))]
    cached = [f for _, _, fs in os.walk(tmp_path / "fastffn") for f in fs]
    assert any(f.endswith(".nbi") for f in cached) and any(f.endswith(".nbc") for f in cached)


def test_numba_cache_dir_is_honoured(tmp_path):
    result = run_python(
        "import numpy; from fastffn.backends import numba; numba.relu_forward(numpy.ones((2, 2)))",
        {"NUMBA_CACHE_DIR": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr
    assert any(f.endswith(".nbi") for _, _, fs in os.walk(tmp_path / "fastffn") for f in fs)


# --- 2: a Sequential subclass is never bypassed --------------------------------


class WeightDecay(Sequential):
    """The notebook's model with L2 weight decay in its own sgd_step."""

    def sgd_step(self, lrate):
        for m in self.modules:
            if isinstance(m, Linear):
                m.dLdW = m.dLdW + 0.1 * m.W
        super().sgd_step(lrate)


def test_a_subclass_overriding_sgd_step_gives_the_same_weights_on_every_path():
    X, Y = hard()

    def make():
        return WeightDecay([Linear(2, 10), ReLU(), Linear(10, 2), SoftMax()], NLL())

    models = train_on_every_path(make, X, Y, iters=500, lrate=0.01, report=False)
    assert not compilable(models["numba"])
    assert_same_weights(models)
    plain = build(fastffn, "ReLU", (2, 10, 2), seed=0, backend="numba")
    np.random.seed(0)
    plain.sgd(X, Y, 500, 0.01, report=False)
    assert np.abs(models["numba"].modules[0].W).sum() < np.abs(plain.modules[0].W).sum()


@pytest.mark.parametrize("method", ["forward", "backward", "sgd_step"])
def test_any_overridden_training_method_keeps_the_model_off_the_compiled_loop(method):
    def mine(self, *args):
        return getattr(Sequential, method)(self, *args)

    cls = type("Mine", (Sequential,), {method: mine})
    model = cls([Linear(2, 2), SoftMax()], NLL(), backend="numba")
    assert not compilable(model)
    assert compilable(Sequential([Linear(2, 2), SoftMax()], NLL(), backend="numba"))


@pytest.mark.parametrize("path", PATHS)
def test_sgd_reports_through_an_overridden_print_accuracy(path):
    calls = []

    class Logged(Sequential):
        def print_accuracy(self, it, X, Y, cur_loss, every=250):
            calls.append((it, cur_loss))

    X, Y = hard()
    backend, compiled = PATHS[path]
    model = Logged([Linear(2, 4), Tanh(), Linear(4, 2), SoftMax()], NLL(), backend=backend)
    history = model.sgd(X, Y, 600, compiled=compiled)
    assert [c[0] for c in calls] == [1, 251, 501]
    assert [c[1] for c in calls] == [h[1] for h in history]


# --- 3: one gradient for SoftMax + NLL, exact where the softmax saturates ----


def test_a_saturated_softmax_trains_the_same_on_every_path():
    X, Y = hard()
    models = train_on_every_path(
        lambda: build(fastffn, "ReLU"), X * 300, Y, iters=3000, lrate=0.01, report=False
    )
    assert_same_weights(models)


def test_softmax_backward_alone_keeps_the_jacobian_product(backend):
    softmax = SoftMax()
    softmax.backend = backend
    A = softmax.forward(np.array([[800.0, 0.0], [0.0, 0.0]]))
    dLdA = np.array([[-1.0, -1.0], [0.0, 0.0]]) / np.maximum(A, np.finfo(float).tiny)
    np.testing.assert_allclose(softmax.backward(dLdA), [[0.0, -0.5], [0.0, 0.5]])


# --- 4: a layer of the user's own may change the width --------------------


class Half(Layer):
    """Keeps the first half of the rows."""

    def forward(self, Z):
        self.rows = Z.shape[0]
        return Z[: self.rows // 2]

    def backward(self, dLdA):
        return np.vstack([dLdA, np.zeros_like(dLdA)])


def test_a_user_layer_that_halves_the_width_trains_on_every_path():
    X, Y = hard()

    def make():
        return Sequential([Linear(2, 16), Half(), Linear(8, 2), SoftMax()], NLL())

    models = train_on_every_path(make, X, Y, iters=500, lrate=0.01, report=False)
    assert_same_weights(models)
    assert models["numba"].forward(X).shape == (2, 20)


def test_linear_sizes_still_chain_where_the_widths_are_known():
    with pytest.raises(ValueError, match=r"modules\[2\] is Linear\(8, 2\)"):
        Sequential([Linear(2, 16), ReLU(), Linear(8, 2), SoftMax()], NLL())


# --- 5: weights set by hand are converted or refused -------------------------


def test_integer_weights_are_converted(backend):
    lin = Linear(2, 2, backend=backend)
    lin.W = np.eye(2, dtype=int)
    assert lin.W.dtype == np.float64
    np.testing.assert_array_equal(lin.forward(np.array([[0.5], [0.25]])), [[0.5], [0.25]])


@pytest.mark.parametrize("compiled", [True, False])
def test_fortran_ordered_weights_train(backend, compiled):
    X, Y = hard()
    model = build(fastffn, "ReLU", backend=backend)
    model.modules[0].W = np.asfortranarray(model.modules[0].W)
    assert model.modules[0].W.flags.c_contiguous
    model.sgd(X, Y, 100, report=False, compiled=compiled)
    assert np.isfinite(model.modules[0].W).all()


@pytest.mark.parametrize(
    ("attribute", "value", "error", "message"),
    [
        ("W", np.ones((3, 2)), ValueError, r"W must have 2 rows, got shape \(3, 2\)"),
        ("W", np.full((2, 2), np.nan), ValueError, "W must be finite"),
        ("W", np.ones((2, 2), dtype=complex), TypeError, "W must hold real numbers"),
        ("W0", np.ones((2, 2)), ValueError, r"W0 must have 1 columns, got shape \(2, 2\)"),
    ],
)
def test_bad_weights_are_refused(attribute, value, error, message):
    lin = Linear(2, 2)
    with pytest.raises(error, match=message):
        setattr(lin, attribute, value)


def test_assigning_float32_weights_makes_a_float32_layer():
    lin = Linear(2, 3)
    lin.W = lin.W.astype(np.float32)
    assert lin.W0.dtype == np.float32 and lin.forward(np.ones((2, 1))).dtype == np.float32


# --- 6: one Linear object used twice ------------------------------------------


def test_a_layer_used_twice_trains_the_same_on_every_path():
    X, Y = hard()

    def make():
        shared = Linear(4, 4)
        return Sequential(
            [Linear(2, 4), Tanh(), shared, Tanh(), shared, Linear(4, 2), SoftMax()], NLL()
        )

    models = train_on_every_path(make, X, Y, iters=500, lrate=0.01, report=False)
    assert not compilable(models["numba"])
    assert_same_weights(models)


# --- 8: save and load ----------------------------------------------------------


def test_loading_a_npy_file_is_a_value_error(tmp_path):
    np.save(tmp_path / "x.npy", np.ones(3))
    with pytest.raises(ValueError, match="holds one array"):
        fastffn.load(tmp_path / "x.npy")


def test_mixed_dtypes_and_backends_round_trip_exactly(tmp_path):
    model = Sequential(
        [Linear(2, 4, dtype=np.float32, backend="numpy"), Tanh(), Linear(4, 2), SoftMax()], NLL()
    )
    model.modules[1].backend = "numba"
    fastffn.save(model, tmp_path / "m.npz")
    loaded = fastffn.load(tmp_path / "m.npz")
    assert [m.backend for m in loaded.layers] == [m.backend for m in model.layers]
    for w, w_saved in zip(weights(loaded), weights(model), strict=True):
        assert w.dtype == w_saved.dtype
        np.testing.assert_array_equal(w, w_saved)
    X, _ = hard()
    np.testing.assert_array_equal(loaded.forward(X), model.forward(X))


def test_a_saved_file_gets_the_mode_a_plain_write_gives(tmp_path):
    model = build(fastffn, "ReLU")
    umask = os.umask(0o022)
    try:
        fastffn.save(model, tmp_path / "new.npz")
        assert (tmp_path / "new.npz").stat().st_mode & 0o777 == 0o644
        (tmp_path / "old.npz").write_bytes(b"")
        (tmp_path / "old.npz").chmod(0o640)
        fastffn.save(model, tmp_path / "old.npz")
        assert (tmp_path / "old.npz").stat().st_mode & 0o777 == 0o640
    finally:
        os.umask(umask)


# --- 9: batches larger than the data; history without printing -------------


@pytest.mark.parametrize("path", PATHS)
def test_any_batch_size_is_drawn_with_replacement(path):
    X, Y = hard()
    backend, compiled = PATHS[path]
    model = build(fastffn, "ReLU", backend=backend)
    history = model.sgd(X, Y, 600, batch_size=32, report=False, compiled=compiled, accuracy=True)
    assert [h[0] for h in history] == [1, 251, 501]
    assert all(np.isfinite(h[1]) and 0 <= h[2] <= 1 for h in history)


def test_batches_larger_than_the_data_agree_across_paths():
    X, Y = hard()
    models = train_on_every_path(
        lambda: build(fastffn, "Tanh"), X, Y, iters=300, lrate=0.002, batch_size=32, report=False
    )
    assert_same_weights(models)


# --- 10: rough edges ----------------------------------------------------------


def test_ctrl_c_stops_a_long_compiled_run_quickly():
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                """
                import signal, fastffn
                from fastffn.sequential import network
                # A background job starts with SIGINT ignored; a terminal's Ctrl-C is not.
                signal.signal(signal.SIGINT, signal.default_int_handler)
                X, Y = fastffn.hard()
                network((2, 10, 10, 2)).sgd(X, Y, 10, report=False)  # compiles
                print("ready", flush=True)
                try:
                    network((2, 10, 10, 2)).sgd(X, Y, 10**9, report=False, every=None)
                except KeyboardInterrupt:
                    print("stopped", flush=True)
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline() == "ready\n"
    time.sleep(1.0)
    sent = time.perf_counter()
    proc.send_signal(signal.SIGINT)
    try:
        out, _ = proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert out == "stopped\n"
    assert time.perf_counter() - sent < 1.0


def test_use_backend_holds_for_its_own_thread_only():
    seen = []
    inside, done = threading.Event(), threading.Event()

    def other():
        inside.wait()
        seen.append(fastffn.get_backend())
        done.set()

    thread = threading.Thread(target=other)
    thread.start()
    with fastffn.use_backend("numpy"):
        inside.set()
        done.wait()
        assert fastffn.get_backend() == "numpy"
    thread.join()
    assert seen == ["numba"]


def test_a_bad_fastffn_backend_variable_is_named_early():
    result = run_python(
        """
        import fastffn
        try:
            fastffn.Sequential([fastffn.Linear(2, 2), fastffn.SoftMax()], fastffn.NLL())
        except ValueError as err:
            print(err)
        """,
        {"FASTFFN_BACKEND": "cuda"},
    )
    assert "FASTFFN_BACKEND must be one of ('numba', 'numpy'), got 'cuda'" in result.stdout


def test_accuracy_on_many_samples_keeps_only_a_block_of_activations(backend):
    model = network((2, 64, 2), backend=backend)
    X = np.random.default_rng(0).standard_normal((2, 3 * ACCURACY_BLOCK + 5))
    Y = np.eye(2)[:, (X[0] > 0).astype(int)]
    accuracy = model.accuracy(X, Y)
    # No layer holds more than a block's activations (the compiled counter holds none).
    assert all(
        getattr(m, "A", None) is None or m.A.shape[1] <= ACCURACY_BLOCK for m in model.modules
    )
    expected = np.mean(model.forward(X).argmax(axis=0) == Y.argmax(axis=0))
    assert accuracy == expected
