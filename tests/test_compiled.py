"""The compiled SGD loop against the layer-by-layer reference."""

import contextlib
import io

import numpy as np
import pytest

import fastffn
from fastffn import NLL, Layer, Linear, Sequential, SoftMax, Tanh, hard, runners
from fastffn.backends import Packed
from fastffn.backends.numba_loop import transposed
from fastffn.packing import compilable
from fastffn.testing import TRAINING_TOLERANCE

from .test_training import build, weights


def blobs(n=60, d=3, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(classes, size=n)
    X = rng.standard_normal((d, n)) + 2 * np.eye(d, classes)[:, y]
    return X, np.eye(classes)[:, y]


def fit(model, X, Y, seed=0, **kwargs):
    np.random.seed(seed)
    with contextlib.redirect_stdout(io.StringIO()) as out:
        history = model.sgd(X, Y, **kwargs)
    return history, out.getvalue()


def assert_same_training(fast, reference, dtype, fast_run, reference_run):
    tolerance = TRAINING_TOLERANCE[np.dtype(dtype)]
    for w, w_ref in zip(weights(fast), weights(reference), strict=True):
        assert w.dtype == dtype
        np.testing.assert_allclose(w, w_ref, **tolerance)
    (history, out), (history_ref, out_ref) = fast_run, reference_run
    assert [h[0] for h in history] == [h[0] for h in history_ref]
    for (_, loss, acc), (_, loss_ref, acc_ref) in zip(history, history_ref, strict=True):
        assert acc == acc_ref
        assert loss == pytest.approx(loss_ref, rel=tolerance["rtol"] * 100, abs=tolerance["atol"])
    assert len(out.splitlines()) == len(out_ref.splitlines()) == len(history)


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
@pytest.mark.parametrize("activation", ["ReLU", "Tanh", "Sigmoid"])
@pytest.mark.parametrize("batch_size", [1, 8, 42])  # 42: ten blocks of four samples, two alone
def test_compiled_loop_matches_the_reference(depth, activation, batch_size, dtype):
    X, Y = blobs()
    widths = (3, *[7] * (depth - 1), 3)
    models = {
        b: build(fastffn, activation, widths, seed=depth, backend=b, dtype=dtype)
        for b in ("numba", "numpy")
    }
    assert compilable(models["numba"])
    # The step is a sum over the batch: at 40 a smaller rate keeps float32 runs from chaos.
    kwargs = {"iters": 1500, "lrate": 0.01 if batch_size < 40 else 0.002, "batch_size": batch_size}
    runs = {b: fit(m, X, Y, seed=depth, **kwargs) for b, m in models.items()}
    assert_same_training(models["numba"], models["numpy"], dtype, runs["numba"], runs["numpy"])
    # accuracy: the compiled counter on numba, the layers on numpy and through numba's layers
    fast = models["numba"]
    assert (
        fast.accuracy(X, Y)
        == models["numpy"].accuracy(X, Y)
        == fast._accuracy(*fast.check_data(X, Y))
    )


class PlainReLU(Layer):
    """ReLU written by a user: the model falls back to training layer by layer."""

    def forward(self, Z):
        self.A = np.maximum(0, Z)
        return self.A

    def backward(self, dLdA):
        return dLdA * (self.A != 0)


def test_model_with_a_user_layer_falls_back_with_the_same_results():
    X, Y = hard()
    compiled = build(fastffn, "ReLU", seed=2, backend="numba")
    np.random.seed(2)
    fallback = Sequential(
        [Linear(2, 10), PlainReLU(), Linear(10, 10), PlainReLU(), Linear(10, 2), SoftMax()],
        NLL(),
        backend="numba",
    )
    assert not compilable(fallback)
    runs = [fit(m, X, Y, seed=2, iters=2000) for m in (compiled, fallback)]
    assert_same_training(compiled, fallback, np.float64, *runs)


@pytest.mark.parametrize(
    "modules",
    [
        lambda: [Linear(2, 2), Tanh()],  # no final SoftMax
        lambda: [Linear(2, 2), SoftMax(), Linear(2, 2), SoftMax()],  # SoftMax inside
        lambda: [Linear(2, 2), type("MyTanh", (Tanh,), {})(), Linear(2, 2), SoftMax()],
        lambda: [Linear(2, 2, dtype=np.float32), Tanh(), Linear(2, 2), SoftMax()],
    ],
)
def test_models_the_loop_cannot_run(modules):
    assert not compilable(Sequential(modules(), NLL(), backend="numba"))


def test_a_model_of_mixed_dtypes_trains_layer_by_layer():
    X, Y = hard()
    model = Sequential([Linear(2, 4, dtype=np.float32), Tanh(), Linear(4, 2), SoftMax()], NLL())
    fit(model, X, Y, iters=500, lrate=0.05)
    assert model.accuracy(X, Y) >= 0.7
    assert [w.dtype for w in weights(model)] == [np.float32] * 2 + [np.float64] * 2


def test_weights_are_fresh_arrays_after_training():
    """Like the notebook's ``W = W - lrate * dLdW``, training never writes into old arrays."""
    X, Y = hard()
    model = build(fastffn, "ReLU", backend="numba")
    before = [w.copy() for w in weights(model)]
    held = weights(model)
    fit(model, X, Y, iters=100, report=False)
    for w_held, w_before, w_after in zip(held, before, weights(model), strict=True):
        np.testing.assert_array_equal(w_held, w_before)
        assert not np.array_equal(w_after, w_before)


def test_rng_leaves_the_global_state_alone(backend):
    X, Y = hard()
    results = []
    for _ in range(2):
        model = build(fastffn, "Tanh", backend=backend)
        np.random.seed(5)
        model.sgd(X, Y, iters=300, rng=np.random.default_rng(11), report=False)
        results.append(weights(model))
        assert np.random.randint(1000) == np.random.RandomState(5).randint(1000)
    for a, b in zip(*results, strict=True):
        np.testing.assert_array_equal(a, b)


def test_report_options(backend):
    X, Y = hard()
    model = build(fastffn, "ReLU", backend=backend)
    history, out = fit(model, X, Y, iters=1000, report=False)
    assert [h[0] for h in history] == [1, 251, 501, 751] and out == ""
    history, out = fit(model, X, Y, iters=1000, report=False, every=None)
    assert history == [] and out == ""
    calls = []
    history, out = fit(model, X, Y, iters=1000, every=100, report=lambda *a: calls.append(a))
    assert out == "" and [c[0] for c in calls] == [1, 101, 201, 301, 401, 501, 601, 701, 801, 901]
    assert history == [(it, float(loss), float(acc)) for it, loss, acc in calls]
    history, out = fit(model, X, Y, iters=5, every=1)
    assert [h[0] for h in history] == [0, 1, 2, 3, 4] and len(out.splitlines()) == 5


def test_divergence_happens_at_the_same_iteration_on_both_backends():
    X, Y = hard()
    messages, final = [], []
    for backend in ("numba", "numpy"):
        model = build(fastffn, "ReLU", backend=backend)
        with pytest.raises(FloatingPointError) as err:
            fit(model, X, Y, iters=100, lrate=1e200)
        messages.append(str(err.value).split(":")[0])
        final.append(weights(model))
    assert messages[0] == messages[1]
    for a, b in zip(*final, strict=True):
        assert np.isfinite(a).all()
        np.testing.assert_allclose(a, b, rtol=1e-10)


def overflowing(backend="numba"):
    """A model and data whose first gradients overflow while its outputs stay finite:
    inputs near 1e300, first weights near 1e-300, last weights near 1e10."""
    X, Y = hard()
    model = build(fastffn, "ReLU", widths=(2, 3, 2), backend=backend)
    first, last = model.linear_layers
    first.W, last.W = first.W * 1e-300, last.W * 1e10
    return model, X * 1e300, Y


@pytest.mark.parametrize("batch_size", [1, 4])
def test_a_gradient_that_overflows_under_finite_outputs_stops_the_step(batch_size):
    """The one-sample loop bounds its gradients instead of checking each; where the
    bound fails, it checks each, as the layers do: the same step stops, untaken."""
    stops, final = [], []
    for backend in ("numba", "numpy"):
        model, X, Y = overflowing(backend)
        with pytest.raises(FloatingPointError) as err:
            fit(model, X, Y, iters=20, lrate=0.01, batch_size=batch_size, every=None)
        assert "nan" not in str(err.value).split(")")[0]  # a finite loss: a gradient stopped it
        stops.append(err.value.iteration)
        final.append(weights(model))
    assert stops[0] == stops[1]
    for a, b in zip(*final, strict=True):
        assert np.isfinite(a).all()
        np.testing.assert_allclose(a, b, rtol=1e-10)


@pytest.mark.parametrize("shape", [(1, 1), (2, 20), (33, 65), (784, 70)])
def test_samples_as_rows_is_the_exact_transpose(shape, dtype):
    X = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    XT = transposed(X)
    assert XT.flags.c_contiguous and XT.dtype == dtype
    np.testing.assert_array_equal(XT, X.T)


def test_a_run_starts_with_the_chunk_the_last_run_of_its_kind_measured(monkeypatch):
    """The second run of a kind calls the compiled loop once, with every step and the same
    records, not first with one step to measure its speed from."""
    X, Y = blobs()
    calls, loop = [], runners.CompiledRunner.loop

    def counted_loop(runner, batch_size, every):
        def counted(*args):
            calls.append(len(args[len(Packed._fields) + 2]))  # the indices: a row a step
            return loop(runner, batch_size, every)(*args)

        return counted

    def run():
        return fit(build(fastffn, "Tanh", widths=(3, 6, 3)), X, Y, iters=300, every=50)

    first = run()  # measures the kind's chunk
    monkeypatch.setattr(runners.CompiledRunner, "loop", counted_loop)
    assert run() == first
    assert calls == [300]
