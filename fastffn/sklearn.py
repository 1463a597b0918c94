"""``FFNClassifier``: fastffn as a scikit-learn estimator, in ``MLPClassifier``'s terms.

Written to scikit-learn's developer guide: ``__init__`` stores its parameters
and nothing else, what ``fit`` learns ends in ``_``, ``validate_data`` checks
the data. X is n_samples by n_features, as scikit-learn has it; it is laid out
for fastffn (features by samples) once a fit.

How it maps to ``Sequential.sgd``: an epoch is one ``sgd`` call over the
shuffled samples (``batches=``), the batches of ``batch_size`` and a last smaller
one; the gradient is the batch mean, as scikit-learn's, with the L2 term
``alpha * W / b`` (``average=True``, ``weight_decay=alpha``), b the batch's
total ``sample_weight`` where there are weights; ``solver="sgd"`` is momentum,
or Nesterov's with ``nesterovs_momentum``, its rate set each epoch by the
``learning_rate`` schedule; ``solver="adam"`` is Adam. The network is fastffn's: the hidden layers
with ``activation``, a SoftMax over every class and the NLL loss (for two
classes too, where scikit-learn has one logistic output), weights drawn as the
notebook draws them, from ``random_state``.
"""

import itertools
import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets, unique_labels
from sklearn.utils.validation import check_is_fitted, validate_data

from .layers import HIDDEN_ACTIVATIONS, NLL, Linear, SoftMax
from .optimizers import Optimizer
from .schedule import Diverged
from .sequential import Sequential
from .training import Trainer, as_weights


class FFNClassifier(ClassifierMixin, BaseEstimator):
    """A feed-forward network classifier trained by fastffn's compiled loop.

    Parameters mean what ``sklearn.neural_network.MLPClassifier``'s mean (no ``lbfgs``).

    Args:
        hidden_layer_sizes (tuple): Widths of the hidden layers.
        activation (str): ``"relu"`` or ``"tanh"``.
        solver (str): ``"sgd"`` (with momentum) or ``"adam"``.
        alpha (float): L2 penalty on the weights (not the biases).
        batch_size (int or "auto"): Samples a step; "auto" is min(200, n_samples).
        learning_rate (str): ``solver="sgd"``'s schedule: ``"constant"``;
            ``"invscaling"``, ``learning_rate_init / (t_ + 1) ** power_t`` after
            each epoch; ``"adaptive"``, divided by 5 where ``n_iter_no_change``
            epochs did not improve (stopping once it is at most 1e-6).
        learning_rate_init (float): The step size.
        power_t (float): The exponent of ``"invscaling"``.
        max_iter (int): Epochs (passes over the training data) at most.
        shuffle (bool): Whether each epoch takes the samples in a new order.
        random_state (int, RandomState or None): Seeds the weights, the order
            of the samples and the validation split.
        tol (float): An epoch improves on the best loss (or validation score)
            if it does so by more than ``tol``.
        verbose (bool): Prints each epoch's loss.
        warm_start (bool): ``fit`` goes on from the last fit's network.
        momentum (float): ``solver="sgd"``'s momentum, in [0, 1).
        nesterovs_momentum (bool): Nesterov's momentum for ``solver="sgd"``.
        early_stopping (bool): Holds out ``validation_fraction`` of the data
            and stops when their accuracy no longer improves; keeps the best network.
        validation_fraction (float): The held-out share, in (0, 1).
        beta_1, beta_2, epsilon (float): Adam's.
        n_iter_no_change (int): Epochs without improvement before stopping.
        backend (str): ``"numba"`` (compiled) or ``"numpy"`` (the reference).
        dtype (str): ``"float64"`` or ``"float32"``.

    Attributes:
        classes_ (ndarray): The class labels.
        n_features_in_ (int): Features seen by ``fit``.
        feature_names_in_ (ndarray): Their names, where X had string column names.
        model_ (Sequential): The trained network.
        coefs_ (list): Each layer's weights, n_fan_in by n_fan_out.
        intercepts_ (list): Each layer's biases, n_fan_out.
        loss_curve_ (list): Each epoch's training loss (mean NLL plus the L2 term)
            at its end.
        best_loss_ (float): The lowest of them (None with early stopping).
        validation_scores_ (list): Each epoch's held-out accuracy (early stopping).
        best_validation_score_ (float): The highest of them (early stopping).
        n_iter_ (int): Epochs run.
        t_ (int): Training samples seen.

    """

    def __init__(
        self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam", alpha=0.0001,
        batch_size="auto", learning_rate="constant", learning_rate_init=0.001, power_t=0.5,
        max_iter=200, shuffle=True,
        random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
        nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1, beta_1=0.9,
        beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, backend="numba", dtype="float64",
    ):  # fmt: skip
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.backend = backend
        self.dtype = dtype

    def fit(self, X, y, sample_weight=None):
        """Trains for up to ``max_iter`` epochs (from the last fit's network with ``warm_start``).

        Args:
            X (array_like): n_samples by n_features.
            y (array_like): n_samples labels.
            sample_weight (array_like): n_samples weights >= 0 (None: all 1): a sample
                counts ``w`` times in the loss and in its batch's mean gradient,
                as in ``MLPClassifier``.

        Returns:
            FFNClassifier: self.

        """
        return self._fit(X, y, sample_weight, incremental=False)

    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """One epoch over X, y, going on from the last call's network and optimizer state.

        Args:
            X (array_like): n_samples by n_features.
            y (array_like): n_samples labels.
            sample_weight (array_like): As in ``fit``.
            classes (array_like): Every label there will be; required on the first call.

        Returns:
            FFNClassifier: self.

        """
        if not hasattr(self, "model_"):
            if classes is None:
                raise ValueError("classes must be given on the first call to partial_fit")
            self.classes_ = unique_labels(np.asarray(classes))
        elif classes is not None and not np.array_equal(unique_labels(classes), self.classes_):
            raise ValueError(
                f"classes={unique_labels(classes)!r} is not the classes of the first call, "
                f"{self.classes_!r}"
            )
        return self._fit(X, y, sample_weight, incremental=True)

    def predict_proba(self, X):
        """Class probabilities, n_samples by n_classes (columns in ``classes_`` order)."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=self._dtype)
        if X.shape[0] == 0:
            return np.empty((0, len(self.classes_)), dtype=self._dtype)
        return self.model_.forward(X.T).T

    def predict_log_proba(self, X):
        """The log of ``predict_proba``."""
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X):
        """The most probable class of each sample (the first on ties)."""
        proba = self.predict_proba(X)  # first: it raises NotFittedError before a fit
        return self.classes_[np.argmax(proba, axis=1)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = self.random_state is None
        return tags

    # --- training -------------------------------------------------------------------

    @property
    def _dtype(self):
        if self.dtype not in ("float64", "float32", np.float64, np.float32):
            raise ValueError(f"dtype must be 'float64' or 'float32', got {self.dtype!r}")
        return np.dtype(self.dtype)

    def _fit(self, X, y, sample_weight, incremental):
        self._check_parameters()
        going_on = incremental or self.warm_start
        first = not (going_on and hasattr(self, "model_"))
        X, y = validate_data(self, X, y, reset=first, dtype=self._dtype)
        check_classification_targets(y)
        if first and not incremental:
            self.classes_ = unique_labels(y)
        labels = self._encode(y)
        if sample_weight is not None:
            sample_weight = as_weights(sample_weight, X.shape[0])
        if first:  # one random stream a training: partial_fit and warm_start go on with it
            self._random = check_random_state(self.random_state)
        rng = self._random
        if first or not incremental:  # as scikit-learn: anew each fit, kept by partial_fit
            self._optimizer, self._rate = self._new_optimizer(), self.learning_rate_init
        if first:
            self.model_ = self._network(X.shape[1], rng)
            self.n_iter_, self.t_, self.loss_curve_ = 0, 0, []
            self.best_loss_, self._no_improvement = np.inf, 0
            self.validation_scores_, self.best_validation_score_ = None, None
        X_val = y_val = weight_val = None
        if self.early_stopping and not incremental:
            parts = train_test_split(
                X, labels, *([] if sample_weight is None else [sample_weight]),
                test_size=self.validation_fraction, random_state=rng,
                stratify=labels if np.bincount(labels).min() > 1 else None,
            )  # fmt: skip
            X, X_val, labels, y_val = parts[:4]
            if sample_weight is not None:
                sample_weight, weight_val = parts[4:]
            self.validation_scores_ = self.validation_scores_ or []
            self.best_validation_score_ = self.best_validation_score_ or -np.inf
            self.best_loss_ = None
        Xt = np.ascontiguousarray(X.T)  # features by samples, once a fit
        Yt = np.zeros((len(self.classes_), X.shape[0]), dtype=self._dtype)
        Yt[labels, np.arange(X.shape[0])] = 1
        trainer = Trainer(self.model_, Xt, Yt, compiled=True, optimizer=self._optimizer,
                          average=True, sample_weight=sample_weight)  # fmt: skip
        n = X.shape[0]
        size = min(200 if self.batch_size == "auto" else self.batch_size, n)
        best = None
        for _ in range(1 if incremental else self.max_iter):
            order = rng.permutation(n) if self.shuffle else np.arange(n)
            try:
                loss = self._epoch(trainer, order, size)
            except Diverged as error:  # named by its epoch, in the estimator's terms
                where = f"in epoch {self.n_iter_ + 1}, "
                raise Diverged(error.iteration, error.loss, error.history, where,
                               "learning_rate_init") from None  # fmt: skip
            self.n_iter_ += 1
            self.t_ += n
            self.loss_curve_.append(loss)
            if self.solver == "sgd" and self.learning_rate == "invscaling":
                self._rate = self.learning_rate_init / (self.t_ + 1) ** self.power_t
            if self.verbose:
                print(f"Iteration {self.n_iter_}, loss = {loss:.8f}")
            if X_val is not None:
                score = self.score(X_val, self.classes_[y_val], sample_weight=weight_val)
                self.validation_scores_.append(score)
                improved = score > self.best_validation_score_ + self.tol
                if score > self.best_validation_score_:
                    self.best_validation_score_ = score
                    best = [w.copy() for m in self.model_.linear_layers for w in (m.W, m.W0)]
            else:
                improved = loss < self.best_loss_ - self.tol
                self.best_loss_ = min(self.best_loss_, loss)
            self._no_improvement = 0 if improved else self._no_improvement + 1
            if self._no_improvement > self.n_iter_no_change:
                if self._stops():
                    break
                self._no_improvement = 0
        else:
            if not incremental and self.max_iter > 0:
                warnings.warn(
                    f"FFNClassifier: the optimizer did not converge in max_iter={self.max_iter} "
                    "epochs", ConvergenceWarning, stacklevel=3,
                )  # fmt: skip
        if best is not None:  # early stopping keeps the network that scored best
            for m, W, W0 in zip(self.model_.linear_layers, best[::2], best[1::2], strict=True):
                m.W, m.W0 = W, W0
        self.coefs_ = [m.W.copy() for m in self.model_.linear_layers]
        self.intercepts_ = [m.W0.ravel().copy() for m in self.model_.linear_layers]
        return self

    def _stops(self):
        """After ``n_iter_no_change`` epochs without improvement: whether training stops (else
        the "adaptive" schedule divides the rate by 5 and goes on)."""
        adaptive = self.solver == "sgd" and self.learning_rate == "adaptive"
        stops = not adaptive or self._rate <= 1e-6
        if not stops:
            self._rate /= 5.0
        if self.verbose:
            what = "stopping" if stops else f"learning rate set to {self._rate:f}"
            print(f"No improvement for {self.n_iter_no_change} epochs: {what}.")
        return stops

    def _epoch(self, trainer, order, size):
        """One pass: full batches of ``size`` in one run, then the smaller rest.

        Returns:
            float: scikit-learn's loss of the epoch: over the samples, the sum of
                each batch's size times its mean (weighted) NLL plus ``alpha / 2``
                times the squared weights (at the epoch's end) over its weight.

        """
        full, rest = divmod(order.size, size)
        parts = [(order[: full * size].reshape(full, size), size)] if full else []
        if rest:
            parts.append((order[full * size :].reshape(1, rest), rest))
        total = shares = 0.0
        for batches, b in parts:
            trainer.run(len(batches), self._rate, batch_size=b, batches=batches, report=False,
                        every=None)  # fmt: skip
            share = b / trainer.batch_weights(batches)  # 1 without weights
            total += float(trainer.losses @ share)
            shares += float(share.sum())
        squares = sum(float(np.dot(m.W.ravel(), m.W.ravel())) for m in self.model_.linear_layers)
        return (total + 0.5 * self.alpha * squares * shares) / order.size

    def _network(self, features, rng):
        """The network, its weights drawn as the notebook draws them, from ``rng``."""
        widths = (features, *_layer_sizes(self.hidden_layer_sizes), len(self.classes_))
        modules = []
        for m, n in itertools.pairwise(widths):
            W = rng.normal(0, np.sqrt(1 / m), (m, n)).astype(self._dtype)
            modules += [Linear.from_weights(W, np.zeros((n, 1), self._dtype), self.backend),
                        HIDDEN_ACTIVATIONS[self.activation]()]  # fmt: skip
        modules[-1] = SoftMax()
        model = Sequential(modules, NLL())
        for module in [*model.modules, model.loss]:
            module.backend = self.backend
        return model

    def _new_optimizer(self):
        if self.solver == "adam":
            return Optimizer("adam", beta1=self.beta_1, beta2=self.beta_2, eps=self.epsilon,
                             weight_decay=self.alpha)  # fmt: skip
        if self.momentum == 0:
            return Optimizer("sgd", weight_decay=self.alpha)
        rule = "nesterov" if self.nesterovs_momentum else "momentum"
        return Optimizer(rule, momentum=self.momentum, weight_decay=self.alpha)

    def _encode(self, y):
        """y as indices into ``classes_``; a label not among them is an error."""
        labels = np.searchsorted(self.classes_, y)
        labels = np.minimum(labels, len(self.classes_) - 1)
        if not np.array_equal(self.classes_[labels], y):
            unknown = sorted(set(np.unique(y)) - set(self.classes_))
            raise ValueError(f"y has labels not in classes_ {self.classes_!r}: {unknown}")
        return labels

    def _check_parameters(self):
        """Every parameter checked, named in the error, before any training."""
        checks = {
            "hidden_layer_sizes": _layer_sizes(self.hidden_layer_sizes) is not None,
            "activation": self.activation in ("relu", "tanh"),
            "solver": self.solver in ("sgd", "adam"),
            "alpha": _number(self.alpha) and self.alpha >= 0,
            "batch_size": self.batch_size == "auto"
            or (_integer(self.batch_size) and self.batch_size >= 1),
            "learning_rate": self.learning_rate in ("constant", "invscaling", "adaptive"),
            "learning_rate_init": _number(self.learning_rate_init) and self.learning_rate_init > 0,
            "power_t": _number(self.power_t),
            "max_iter": _integer(self.max_iter) and self.max_iter >= 1,
            "tol": _number(self.tol) and self.tol >= 0,
            "momentum": _number(self.momentum) and 0 <= self.momentum < 1,
            "validation_fraction": _number(self.validation_fraction)
            and 0 < self.validation_fraction < 1,
            "beta_1": _number(self.beta_1) and 0 <= self.beta_1 < 1,
            "beta_2": _number(self.beta_2) and 0 <= self.beta_2 < 1,
            "epsilon": _number(self.epsilon) and self.epsilon > 0,
            "n_iter_no_change": _integer(self.n_iter_no_change) and self.n_iter_no_change >= 1,
            "backend": self.backend in ("numba", "numpy"),
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(
                    f"{name} got {getattr(self, name)!r}: see FFNClassifier's docstring"
                )
        self._dtype  # noqa: B018  (raises for a bad dtype)


def _layer_sizes(sizes):
    """hidden_layer_sizes as a tuple of positive ints, or None where it is not one."""
    sizes = (sizes,) if _integer(sizes) else sizes
    try:
        sizes = tuple(sizes)
    except TypeError:
        return None
    return sizes if all(_integer(s) and s > 0 for s in sizes) else None


def _number(value):
    real = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    return real and bool(np.isfinite(value))


def _integer(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)
