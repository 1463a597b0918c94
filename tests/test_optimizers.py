"""Momentum, Nesterov's and Adam, with weight decay: the published formulas, on every path."""

import math

import numpy as np
import pytest

import fastffn
from fastffn import NLL, Linear, ReLU, Sequential, SoftMax, hard
from fastffn.optimizers import RULES, Optimizer
from fastffn.sequential import network
from fastffn.testing import TRAINING_TOLERANCE

from .test_training import weights

RULE_CASES = [
    ("sgd", {"weight_decay": 0.01}),
    ("momentum", {"momentum": 0.9}),
    ("momentum", {"momentum": 0.5, "weight_decay": 0.001}),
    ("nesterov", {"momentum": 0.9}),
    ("adam", {}),
    ("adam", {"beta1": 0.8, "beta2": 0.99, "eps": 1e-6, "weight_decay": 0.01}),
    ("adam", {"average": True, "weight_decay": 0.01}),  # scikit-learn's batch mean
    ("nesterov", {"average": True}),
]


def one_layer_model(W, W0, backend):
    layer = Linear.from_weights(W, W0, backend=backend)
    return Sequential([layer, SoftMax()], NLL())


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_two_steps_by_hand_follow_the_published_formulas(backend):
    """Each rule written out with plain floats, per number, for two steps of given gradients:
    momentum (Polyak 1964), Nesterov (Sutskever et al. 2013, as scikit-learn writes it),
    Adam (Kingma & Ba 2015, Algorithm 1 with the step size of its section 2)."""
    W, W0 = np.array([[0.5, -1.0]]), np.array([[0.25], [2.0]])
    grads = [(np.array([[0.2, -0.4]]), np.array([[0.1], [0.3]])),
             (np.array([[-0.1, 0.5]]), np.array([[0.0], [-0.2]]))]  # fmt: skip
    lr, mu, b1, b2, eps, decay = 0.1, 0.9, 0.9, 0.999, 1e-8, 0.01

    def by_hand(rule, w, gs, decayed):
        v = m = s = 0.0
        for t, g in enumerate(gs, start=1):
            g = g + (decay * w if decayed else 0.0)
            if rule == "momentum":
                v = mu * v - lr * g
                w = w + v
            elif rule == "nesterov":
                v = mu * v - lr * g
                w = w + (mu * v - lr * g)
            else:
                m = b1 * m + (1 - b1) * g
                s = b2 * s + (1 - b2) * g * g
                w = w - lr * math.sqrt(1 - b2**t) / (1 - b1**t) * m / (math.sqrt(s) + eps)
        return w

    for rule in ("momentum", "nesterov", "adam"):
        model = one_layer_model(W, W0, backend)
        hyper = {"beta1": b1, "beta2": b2, "eps": eps} if rule == "adam" else {"momentum": mu}
        optimizer = Optimizer(rule, **hyper, weight_decay=decay)
        optimizer.prepare(model, W.size + W0.size, np.dtype(np.float64))
        layer = model.linear_layers[0]
        for dW, dW0 in grads:
            layer.dLdW, layer.dLdW0 = dW, dW0
            optimizer.update(model, lr)
        assert optimizer.t == 2
        for i in range(2):  # the decay acts on W, never on the biases W0
            expected_w = by_hand(rule, W[0, i], [g[0][0, i] for g in grads], decayed=True)
            expected_b = by_hand(rule, W0[i, 0], [g[1][i, 0] for g in grads], decayed=False)
            assert layer.W[0, i] == pytest.approx(expected_w, rel=1e-14, abs=1e-15)
            assert layer.W0[i, 0] == pytest.approx(expected_b, rel=1e-14, abs=1e-15)


@pytest.mark.parametrize(("rule", "hyper"), [("momentum", {}), ("nesterov", {}), ("adam", {})])
def test_a_thousand_steps_match_scikit_learns_optimizers(rule, hyper):
    """The layer path's updates against scikit-learn's SGDOptimizer and AdamOptimizer, fed the
    same gradients for 1,000 steps."""
    optimizers = pytest.importorskip("sklearn.neural_network._stochastic_optimizers")
    X, Y = hard()
    model = network((2, 10, 10, 2), backend="numpy")
    params = [p.copy() for m in model.linear_layers for p in (m.W, m.W0)]
    if rule == "adam":
        theirs = optimizers.AdamOptimizer(params, 0.01, 0.9, 0.999, 1e-8)
    else:
        theirs = optimizers.SGDOptimizer(params, 0.01, "constant", momentum=0.9,
                                         nesterov=rule == "nesterov")  # fmt: skip
    ours = Optimizer(rule, **({} if rule == "adam" else {"momentum": 0.9}))
    ours.prepare(model, sum(p.size for p in params), np.dtype(np.float64))
    rng = np.random.default_rng(0)
    for _ in range(1000):
        columns = rng.integers(X.shape[1], size=4)
        model.loss.forward(model.forward(X[:, columns]), Y[:, columns])
        model.backward(model.loss.backward())
        grads = [g for m in model.linear_layers for g in (m.dLdW, m.dLdW0)]
        if rule == "adam":  # scikit-learn's mean gradient: G scaled by 1 / b
            theirs.update_params(params, [g / 4 for g in grads])
            ours.update(model, 0.01, scale=0.25)
        else:
            theirs.update_params(params, grads)
            ours.update(model, 0.01)
    for w, w_theirs in zip(weights(model), params, strict=True):
        np.testing.assert_allclose(w, w_theirs, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(("rule", "hyper"), RULE_CASES)
@pytest.mark.parametrize("batch_size", [1, 8])
def test_every_path_gives_the_same_weights(rule, hyper, batch_size, dtype):
    """Compiled loop, numba layer by layer, numpy reference: 1,000 steps, one tolerance."""
    X, Y = hard()
    trained = {}
    for path in ("numba", "numba-layers", "numpy"):
        model = network((2, 10, 10, 2), backend="numpy" if path == "numpy" else "numba",
                        dtype=dtype)  # fmt: skip
        np.random.seed(1)
        history = model.sgd(X, Y, 1000, 0.01, batch_size=batch_size, report=False, every=100,
                            optimizer=rule, compiled=path == "numba", **hyper)  # fmt: skip
        trained[path] = (weights(model), history)
    tolerance = TRAINING_TOLERANCE[np.dtype(dtype)]
    reference, history_ref = trained["numpy"]
    for path in ("numba", "numba-layers"):
        ws, history = trained[path]
        for w, w_ref in zip(ws, reference, strict=True):
            assert w.dtype == dtype
            np.testing.assert_allclose(w, w_ref, **tolerance)
        assert [h[2] for h in history] == [h[2] for h in history_ref]
    assert not all(
        np.allclose(w, w_plain)
        for w, w_plain in zip(reference, plain_sgd_weights(X, Y, dtype, batch_size), strict=True)
    )  # the rule changed the training


def plain_sgd_weights(X, Y, dtype, batch_size):
    model = network((2, 10, 10, 2), backend="numpy", dtype=dtype)
    np.random.seed(1)
    model.sgd(X, Y, 1000, 0.01, batch_size=batch_size, report=False)
    return weights(model)


def test_sgd_by_default_is_the_notebooks_step():
    X, Y = hard()
    a, b = network((2, 10, 10, 2)), network((2, 10, 10, 2))
    np.random.seed(2)
    a.sgd(X, Y, 500, 0.01, report=False)
    np.random.seed(2)
    b.sgd(X, Y, 500, 0.01, report=False, optimizer="sgd", weight_decay=0.0)
    for w, w_b in zip(weights(a), weights(b), strict=True):
        np.testing.assert_array_equal(w, w_b)


@pytest.mark.parametrize("compiled", [True, False])
def test_an_optimizer_goes_on_where_the_last_call_stopped(compiled):
    X, Y = hard()
    whole, halves = network((2, 10, 10, 2)), network((2, 10, 10, 2))
    np.random.seed(4)
    whole.sgd(X, Y, 600, 0.01, report=False, optimizer="adam", compiled=compiled)
    np.random.seed(4)
    adam = Optimizer("adam")
    halves.sgd(X, Y, 300, 0.01, report=False, optimizer=adam, compiled=compiled)
    halves.sgd(X, Y, 300, 0.01, report=False, optimizer=adam, compiled=not compiled)
    assert adam.t == 600
    for w, w_half in zip(weights(whole), weights(halves), strict=True):
        np.testing.assert_allclose(w, w_half, **TRAINING_TOLERANCE[np.dtype(np.float64)])


class OwnStep(Sequential):
    def sgd_step(self, lrate):
        super().sgd_step(lrate)


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"optimizer": "rmsprop"}, ValueError, "optimizer must be one of"),
        ({"optimizer": 3}, TypeError, "optimizer must be one of"),
        ({"optimizer": "momentum", "momentum": 1.5}, ValueError,
         "momentum must be a number >= 0 and < 1.0, got 1.5"),
        ({"optimizer": "adam", "beta2": -0.1}, ValueError, "beta2 must be a number >= 0"),
        ({"optimizer": "adam", "eps": 0}, ValueError, "eps must be finite and > 0"),
        ({"weight_decay": -1}, ValueError, "weight_decay must be a number >= 0, got -1"),
        ({"optimizer": Optimizer("adam"), "beta1": 0.5}, TypeError,
         "give ['beta1'] to the Optimizer"),
        ({"learning_rate": 0.1}, TypeError, "learning_rate"),
        ({"average": 1}, TypeError, "average must be True or False, got 1"),
    ],
)  # fmt: skip
def test_bad_optimizer_arguments_are_named(kwargs, error, words):
    X, Y = hard()
    with pytest.raises(error, match=None) as info:
        network((2, 10, 10, 2)).sgd(X, Y, 10, 0.01, report=False, **kwargs)
    assert words in str(info.value)


def test_a_model_with_its_own_step_refuses_rules_it_would_bypass():
    X, Y = hard()
    model = OwnStep([Linear(2, 4), ReLU(), Linear(4, 2), SoftMax()], NLL())
    with pytest.raises(ValueError, match="its own sgd_step can only use plain 'sgd'"):
        model.sgd(X, Y, 10, 0.01, report=False, optimizer="adam")
    model.sgd(X, Y, 10, 0.01, report=False)  # its own step, as before


def test_an_optimizer_holds_one_models_state():
    X, Y = hard()
    adam = Optimizer("adam")
    network((2, 10, 10, 2)).sgd(X, Y, 10, 0.01, report=False, optimizer=adam)
    with pytest.raises(ValueError, match="holds the state of another model"):
        network((2, 4, 2)).sgd(X, Y, 10, 0.01, report=False, optimizer=adam)


def test_rules_are_exported():
    assert fastffn.Optimizer is Optimizer
    assert RULES == ("sgd", "momentum", "nesterov", "adam")


def test_a_hyperparameter_the_rule_does_not_use_is_refused():
    with pytest.raises(ValueError, match="optimizer 'sgd' takes no momentum"):
        Optimizer("sgd", momentum=0.5)
    with pytest.raises(ValueError, match="optimizer 'momentum' takes no beta1"):
        Optimizer("momentum", beta1=0.5)
    X, Y = hard()
    with pytest.raises(ValueError, match="takes no momentum"):
        network((2, 4, 2)).sgd(X, Y, 10, optimizer="sgd", momentum=0.5, report=False)


def test_an_optimizer_is_bound_to_the_model_it_updates():
    X, Y = hard()
    optimizer = Optimizer("adam")
    first, second = network((2, 4, 2), seed=0), network((2, 4, 2), seed=0)
    first.sgd(X, Y, 10, optimizer=optimizer, report=False)
    first.sgd(X, Y, 10, optimizer=optimizer, report=False)  # goes on: its own model
    with pytest.raises(ValueError, match="holds the state of another model"):
        second.sgd(X, Y, 10, optimizer=optimizer, report=False)


def test_a_step_size_that_is_zero_in_the_models_dtype_is_refused():
    X, Y = hard()
    with pytest.raises(ValueError, match="lrate 1e-50 is 0 in the model's dtype, float32"):
        network((2, 4, 2), dtype=np.float32).sgd(X, Y, 10, lrate=1e-50, report=False)


@pytest.mark.parametrize(("rule", "hyper"), RULE_CASES)
@pytest.mark.parametrize("batch_size", [1, 4])
def test_save_load_and_go_on_ends_where_one_run_ends(tmp_path, rule, hyper, batch_size):
    X, Y = hard()
    hyper = dict(hyper)
    run = {"batch_size": batch_size, "average": hyper.pop("average", False), "report": False}
    whole = network((2, 10, 10, 2))  # seeds NumPy's global state: the batches are its draws
    whole.sgd(X, Y, 600, 0.01, optimizer=Optimizer(rule, **hyper), **run)
    model, optimizer = network((2, 10, 10, 2)), Optimizer(rule, **hyper)
    model.sgd(X, Y, 300, 0.01, optimizer=optimizer, **run)
    fastffn.save(model, tmp_path / "half.npz", optimizer=optimizer)
    loaded, restored = fastffn.load(tmp_path / "half.npz", optimizer=True)
    assert (restored.rule, restored.t) == (rule, 300) and restored is not optimizer
    loaded.sgd(X, Y, 300, 0.01, optimizer=restored, **run)
    for a, b in zip(weights(loaded), weights(whole), strict=True):
        np.testing.assert_array_equal(a, b)
    assert fastffn.load(tmp_path / "half.npz", optimizer=False).linear_layers[0].W.shape == (2, 10)


def test_a_file_without_an_optimizer_loads_none_and_a_foreign_state_is_refused(tmp_path):
    model = network((2, 3, 2))
    fastffn.save(model, tmp_path / "m.npz")
    assert fastffn.load(tmp_path / "m.npz", optimizer=True)[1] is None
    optimizer = Optimizer("adam")
    network((2, 3, 2)).sgd(*hard(), 5, 0.01, optimizer=optimizer, report=False)
    with pytest.raises(ValueError, match="state of another model"):
        fastffn.save(model, tmp_path / "m.npz", optimizer=optimizer)
    with pytest.raises(TypeError, match="optimizer must be an Optimizer"):
        fastffn.save(model, tmp_path / "m.npz", optimizer="adam")
