"""fastffn.sklearn.FFNClassifier: scikit-learn's estimator checks and how people use estimators."""

import pickle
import warnings

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")  # the test extra installs it

from sklearn.base import clone  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from fastffn import NLL, Linear, ReLU, Sequential, SoftMax  # noqa: E402
from fastffn.sklearn import FFNClassifier  # noqa: E402
from fastffn.testing import TRAINING_TOLERANCE  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@parametrize_with_checks([FFNClassifier(max_iter=50, random_state=0)])
def test_scikit_learns_estimator_checks(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return train_test_split(X / 16, y, test_size=0.25, random_state=0)


def quick(**params):
    defaults = {"hidden_layer_sizes": (32,), "max_iter": 5, "batch_size": 32, "random_state": 0}
    return FFNClassifier(**{**defaults, **params})


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_digits_are_learned_by_both_solvers(digits, solver):
    X_train, X_test, y_train, y_test = digits
    rate = 0.01 if solver == "sgd" else 0.001
    model = quick(solver=solver, learning_rate_init=rate, max_iter=20, hidden_layer_sizes=(64,))
    assert model.fit(X_train, y_train) is model
    assert model.score(X_test, y_test) > 0.93
    assert model.n_iter_ == 20 and model.t_ == 20 * len(X_train)
    assert len(model.loss_curve_) == 20 and model.loss_curve_[-1] < model.loss_curve_[0]
    assert [c.shape for c in model.coefs_] == [(64, 64), (64, 10)]
    assert [b.shape for b in model.intercepts_] == [(64,), (10,)]
    proba = model.predict_proba(X_test)
    np.testing.assert_allclose(proba.sum(axis=1), 1)
    np.testing.assert_allclose(model.predict_log_proba(X_test), np.log(proba))


def test_backends_and_their_paths_agree(digits):
    X_train, _, y_train, _ = digits
    fast = quick(backend="numba").fit(X_train, y_train)
    reference = quick(backend="numpy").fit(X_train, y_train)
    for a, b in zip(fast.coefs_ + fast.intercepts_, reference.coefs_ + reference.intercepts_,
                    strict=True):  # fmt: skip
        np.testing.assert_allclose(a, b, **TRAINING_TOLERANCE[np.dtype(np.float64)])
    np.testing.assert_allclose(fast.loss_curve_, reference.loss_curve_, rtol=1e-9)


def test_the_mean_gradient_is_sgd_of_the_sum_at_lrate_over_b(digits):
    """What the README says: solver="sgd", momentum 0, alpha 0, batch b, at learning rate lr
    is Sequential.sgd over the same batches at lrate lr / b."""
    X_train, _, y_train, _ = digits
    X, y = X_train[:320], y_train[:320]
    model = quick(solver="sgd", momentum=0, alpha=0, learning_rate_init=0.05, max_iter=1,
                  shuffle=False).fit(X, y)  # fmt: skip
    rng = np.random.RandomState(0)
    layers = []
    for m, n in [(64, 32), (32, 10)]:
        W = rng.normal(0, np.sqrt(1 / m), (m, n))
        layers += [Linear.from_weights(W, np.zeros((n, 1))), ReLU()]
    net = Sequential([*layers[:-1], SoftMax()], NLL())
    Y = np.eye(10)[:, y]
    net.sgd(X.T, Y, 10, 0.05 / 32, batch_size=32, batches=np.arange(320).reshape(10, 32),
            report=False)  # fmt: skip
    for W, layer in zip(model.coefs_, net.linear_layers, strict=True):
        np.testing.assert_allclose(W, layer.W, rtol=1e-12, atol=1e-14)


def test_any_label_type_and_float32():
    X = np.random.default_rng(0).standard_normal((90, 4))
    y = np.array(["cat", "dog", "eel"])[(X[:, 0] > 0).astype(int) + (X[:, 1] > 1)]
    model = quick(dtype="float32", max_iter=30, learning_rate_init=0.01).fit(X, y)
    assert list(model.classes_) == ["cat", "dog", "eel"]
    assert set(model.predict(X)) <= {"cat", "dog", "eel"}
    assert model.predict_proba(X).dtype == np.float32
    assert model.score(X, y) > 0.8


def test_partial_fit_goes_on_one_epoch_at_a_time(digits):
    X_train, _, y_train, _ = digits
    with pytest.raises(ValueError, match="classes must be given on the first call"):
        quick().partial_fit(X_train, y_train)
    model = quick()
    for _ in range(3):
        model.partial_fit(X_train, y_train, classes=np.arange(10))
    assert model.n_iter_ == 3 and model._optimizer.t == 3 * 43
    whole = quick(max_iter=3).fit(X_train, y_train)
    for a, b in zip(model.coefs_, whole.coefs_, strict=True):  # the same epochs, the same draws
        np.testing.assert_allclose(a, b, **TRAINING_TOLERANCE[np.dtype(np.float64)])
    with pytest.raises(ValueError, match="not the classes of the first call"):
        model.partial_fit(X_train, y_train, classes=np.arange(11))


def test_warm_start_goes_on_and_cold_start_starts_over(digits):
    X_train, _, y_train, _ = digits
    warm = quick(warm_start=True, max_iter=2).fit(X_train, y_train)
    first = [c.copy() for c in warm.coefs_]
    warm.fit(X_train, y_train)
    assert warm.n_iter_ == 4 and not np.allclose(first[0], warm.coefs_[0])
    cold = quick(max_iter=2).fit(X_train, y_train)
    cold.fit(X_train, y_train)
    assert cold.n_iter_ == 2
    np.testing.assert_array_equal(cold.coefs_[0], first[0])


def test_early_stopping_keeps_the_best_network(digits):
    X_train, _, y_train, _ = digits
    model = quick(early_stopping=True, max_iter=60, n_iter_no_change=3, learning_rate_init=0.01)
    model.fit(X_train, y_train)
    assert model.n_iter_ < 60  # stopped early
    assert model.best_validation_score_ == max(model.validation_scores_) > 0.9
    assert model.best_loss_ is None


def test_convergence_stops_or_warns():
    X = np.random.default_rng(1).standard_normal((60, 3))
    y = (X[:, 0] > 0).astype(int)
    with pytest.warns(ConvergenceWarning, match="did not converge in max_iter=3"):
        quick(max_iter=3, tol=0).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        model = quick(max_iter=500, tol=1.0, n_iter_no_change=2).fit(X, y)
    assert model.n_iter_ == 4  # the first epoch improves on inf, three more do not by 1.0


def test_pipeline_cross_validation_clone_and_pickle(digits):
    X_train, X_test, y_train, _ = digits
    pipe = make_pipeline(StandardScaler(), quick(max_iter=10))
    scores = cross_val_score(pipe, X_train, y_train, cv=3)
    assert scores.shape == (3,) and scores.min() > 0.85
    model = quick().fit(X_train, y_train)
    copy = clone(model)
    assert copy.get_params() == model.get_params() and not hasattr(copy, "model_")
    restored = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(restored.predict_proba(X_test), model.predict_proba(X_test))


def test_grid_search_on_two_processes_picks_what_one_picks(digits):
    X_train, _, y_train, _ = digits
    grid = {"hidden_layer_sizes": [(16,), (64,)], "learning_rate_init": [0.0003, 0.003]}
    picked = [
        GridSearchCV(quick(max_iter=8), grid, cv=3, n_jobs=jobs).fit(X_train, y_train)
        for jobs in (1, 2)
    ]
    assert picked[0].best_params_ == picked[1].best_params_
    np.testing.assert_allclose(picked[0].cv_results_["mean_test_score"],
                               picked[1].cv_results_["mean_test_score"])  # fmt: skip


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"hidden_layer_sizes": (10, 0)}, "hidden_layer_sizes got (10, 0)"),
        ({"activation": "logistic"}, "activation got 'logistic'"),
        ({"solver": "lbfgs"}, "solver got 'lbfgs'"),
        ({"batch_size": 0}, "batch_size got 0"),
        ({"learning_rate_init": -1.0}, "learning_rate_init got -1.0"),
        ({"momentum": 1.0}, "momentum got 1.0"),
        ({"dtype": "float16"}, "dtype must be 'float64' or 'float32', got 'float16'"),
        ({"backend": "cuda"}, "backend got 'cuda'"),
    ],
)
def test_bad_parameters_are_named(params, words):
    X, y = np.ones((4, 2)), np.array([0, 1, 0, 1])
    with pytest.raises(ValueError) as info:
        FFNClassifier(**params).fit(X, y)
    assert words in str(info.value)


@pytest.mark.parametrize(
    "change", [{"solver": "sgd"}, {"alpha": 0.1}, {"beta_1": 0.5}, {"learning_rate_init": 0.01}]
)
def test_a_warm_start_fit_takes_the_new_parameters_with_a_new_optimizer(change):
    """As MLPClassifier: each fit makes its optimizer anew from the parameters; partial_fit
    keeps it."""
    X, y = load_digits(return_X_y=True)
    X, y = X[:200] / 16, y[:200]  # one batch ("auto": 200) an epoch
    fits = []
    for params in ({}, change):
        clf = FFNClassifier((8,), max_iter=5, warm_start=True, random_state=0, tol=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(X, y)
            first_optimizer = clf._optimizer
            clf.set_params(**params)
            clf.fit(X, y)
        assert clf._optimizer is not first_optimizer
        assert clf._optimizer.t == 5  # this fit's steps only
        fits.append(clf.coefs_[0])
    assert not np.array_equal(fits[0], fits[1])


def test_a_fit_that_diverges_names_its_epoch():
    X, y = load_digits(return_X_y=True)
    clf = FFNClassifier((16,), solver="sgd", momentum=0.9, learning_rate_init=1e300, max_iter=5,
                        random_state=0)  # fmt: skip
    with pytest.raises(FloatingPointError, match=r"diverged in epoch 1, at iteration \d+: .*"
                       r"try a smaller learning_rate_init"):  # fmt: skip
        clf.fit(X, y)


# --- sample_weight, as MLPClassifier has it -----------------------------------------


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_weights_of_one_are_no_weights(digits, solver):
    X_train, _, y_train, _ = digits
    plain = quick(solver=solver, learning_rate_init=0.01).fit(X_train, y_train)
    ones = quick(solver=solver, learning_rate_init=0.01)
    ones.fit(X_train, y_train, sample_weight=np.ones(len(y_train)))
    for a, b in zip(plain.coefs_ + plain.intercepts_, ones.coefs_ + ones.intercepts_, strict=True):
        np.testing.assert_array_equal(a, b)
    assert plain.loss_curve_ == ones.loss_curve_


@pytest.mark.parametrize("solver", ["sgd", "adam"])
@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_a_weight_of_k_is_the_sample_k_times_in_one_batch(solver, backend):
    """A batch holding every sample: weight k (0 included) is the sample repeated k times,
    in the weights, the loss curve and the held-out score."""
    rng = np.random.default_rng(3)
    X, y = rng.standard_normal((40, 5)), rng.integers(0, 3, 40)
    weight = rng.integers(0, 4, 40)
    params = {"solver": solver, "batch_size": 200, "alpha": 0.01, "max_iter": 8,
              "backend": backend, "learning_rate_init": 0.01}  # fmt: skip
    weighted = quick(**params).fit(X, y, sample_weight=weight)
    repeated = quick(**params).fit(X.repeat(weight, axis=0), y.repeat(weight))
    for a, b in zip(weighted.coefs_ + weighted.intercepts_,
                    repeated.coefs_ + repeated.intercepts_, strict=True):  # fmt: skip
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(weighted.loss_curve_, repeated.loss_curve_, rtol=1e-12)


def test_weighted_batches_agree_on_both_backends(digits):
    X_train, _, y_train, _ = digits
    weight = np.random.default_rng(0).uniform(0, 3, len(y_train))
    fits = [quick(backend=b, solver=s).fit(X_train, y_train, sample_weight=weight)
            for s in ("sgd", "adam") for b in ("numba", "numpy")]  # fmt: skip
    for fast, reference in (fits[:2], fits[2:]):
        for a, b in zip(fast.coefs_, reference.coefs_, strict=True):
            np.testing.assert_allclose(a, b, **TRAINING_TOLERANCE[np.dtype(np.float64)])
        np.testing.assert_allclose(fast.loss_curve_, reference.loss_curve_, rtol=1e-9)


@pytest.mark.parametrize(
    ("weight", "words"),
    [(np.ones(3), "must be 40 finite numbers"), (-np.ones(40), "negative"),
     (np.zeros(40), "must not be all zero"), (np.full(40, np.nan), "non-finite")],
)  # fmt: skip
def test_bad_sample_weights_are_named(weight, words):
    X, y = np.random.default_rng(0).standard_normal((40, 3)), np.arange(40) % 2
    with pytest.raises(ValueError, match=f"sample_weight.*{words}|{words}"):
        quick().fit(X, y, sample_weight=weight)


# --- learning_rate schedules, as MLPClassifier has them -----------------------------


def test_invscaling_sets_each_epochs_rate_from_the_samples_seen(digits):
    """Two epochs of invscaling: one at the initial rate, one at init / (t_ + 1) ** power_t."""
    X_train, _, y_train, _ = digits
    n, init, power = len(y_train), 0.05, 0.3
    params = {"solver": "sgd", "momentum": 0, "learning_rate_init": init, "max_iter": 1}
    scheduled = quick(**params, learning_rate="invscaling", power_t=power)
    scheduled.set_params(max_iter=2).fit(X_train, y_train)
    by_hand = quick(**params, warm_start=True).fit(X_train, y_train)
    by_hand.set_params(learning_rate_init=init / (n + 1) ** power).fit(X_train, y_train)
    for a, b in zip(scheduled.coefs_, by_hand.coefs_, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-15)
    assert scheduled._rate == pytest.approx(init / (2 * n + 1) ** power)


@pytest.mark.parametrize("schedule", ["constant", "adaptive"])
def test_adaptive_divides_the_rate_where_constant_stops_as_scikit_learn(schedule):
    from sklearn.neural_network import MLPClassifier

    X = np.random.default_rng(2).standard_normal((50, 3))
    y = (X[:, 0] > 0).astype(int)
    # tol 1e9: no epoch after the first improves, so every second epoch hits n_iter_no_change
    params = {"solver": "sgd", "learning_rate": schedule, "tol": 1e9, "n_iter_no_change": 1,
              "max_iter": 7, "learning_rate_init": 0.01, "random_state": 0}  # fmt: skip
    ours = FFNClassifier(**params).fit(X, y)
    theirs = MLPClassifier(**params).fit(X, y)
    assert ours.n_iter_ == theirs.n_iter_
    assert ours._rate == pytest.approx(theirs._optimizer.learning_rate)
