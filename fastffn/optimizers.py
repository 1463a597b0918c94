"""Update rules beyond the notebook's SGD: momentum, Nesterov's, Adam; L2 weight decay.

An ``Optimizer`` holds a rule, its hyperparameters and its state (velocities,
moment estimates, the step count), so that training can go on where a call of
``Sequential.sgd`` left it. The arithmetic is the kernels' (``momentum_update``,
``nesterov_update``, ``adam_update`` of each backend); the compiled loop runs
the same kernels on its flat weight buffer.

The formulas, with G the gradient plus ``weight_decay`` times the weights (W
only, never the biases W0):

- sgd: ``W -= lrate * G`` (the notebook's step when ``weight_decay`` is 0);
- momentum (Polyak 1964): ``V = momentum * V - lrate * G; W += V``;
- nesterov (Sutskever et al. 2013): V as above, ``W += momentum * V - lrate * G``;
- adam (Kingma & Ba 2015, Algorithm 1 with the step size of its section 2):
  ``M = beta1 * M + (1 - beta1) * G; V = beta2 * V + (1 - beta2) * G**2;
  W -= lrate * sqrt(1 - beta2**t) / (1 - beta1**t) * M / (sqrt(V) + eps)``.

These are scikit-learn's ``SGDOptimizer`` and ``AdamOptimizer`` updates.
"""

import math

import numpy as np

from ._validation import as_step_size

#: The rules, in the order of their codes in the compiled loops.
RULES = ("sgd", "momentum", "nesterov", "adam")
#: The hyperparameters each rule uses (weight_decay: every rule).
HYPER = {
    "sgd": (),
    "momentum": ("momentum",),
    "nesterov": ("momentum",),
    "adam": ("beta1", "beta2", "eps"),
}


class Optimizer:
    """An update rule and its state.

    Args:
        rule (str): One of ``RULES``.
        momentum (float): For momentum and nesterov, in [0, 1) (default 0.9).
        beta1 (float): Adam's decay of the first moment, in [0, 1) (default 0.9).
        beta2 (float): Adam's decay of the second moment, in [0, 1) (default 0.999).
        eps (float): Adam's term that keeps the division finite, > 0 (default 1e-8).
            A rule given a hyperparameter it does not use raises ValueError.
        weight_decay (float): L2 penalty: ``weight_decay * W`` is added to each
            W's gradient (the gradient of ``weight_decay / 2 * ||W||**2``), >= 0.

    Attributes:
        t (int): Steps taken so far (Adam's bias corrections count them).
        slots (ndarray or None): 2 by P: the state of the model's P weights, laid
            out as ``packing.pack`` lays them (velocity, or Adam's M and V).

    """

    def __init__(self, rule="sgd", *, momentum=None, beta1=None, beta2=None, eps=None,
                 weight_decay=0.0):  # fmt: skip
        if rule not in RULES:
            raise ValueError(f"optimizer must be one of {RULES}, got {rule!r}")
        given = {"momentum": momentum, "beta1": beta1, "beta2": beta2, "eps": eps}
        unused = [k for k, v in given.items() if v is not None and k not in HYPER[rule]]
        if unused:
            raise ValueError(
                f"optimizer {rule!r} takes no {', '.join(unused)} (it uses "
                f"{', '.join(HYPER[rule]) or 'only weight_decay'}): drop it, or choose "
                f"{'momentum or nesterov' if 'momentum' in unused else 'adam'}"
            )
        self.rule = rule
        self.momentum = _fraction("momentum", 0.9 if momentum is None else momentum)
        self.beta1 = _fraction("beta1", 0.9 if beta1 is None else beta1)
        self.beta2 = _fraction("beta2", 0.999 if beta2 is None else beta2)
        self.eps = as_step_size("eps", 1e-8 if eps is None else eps)
        self.weight_decay = _fraction("weight_decay", weight_decay, high=math.inf)
        self.t, self.slots, self._model = 0, None, None

    def __repr__(self):
        return (
            f"Optimizer({self.rule!r}, momentum={self.momentum}, beta1={self.beta1}, "
            f"beta2={self.beta2}, eps={self.eps}, weight_decay={self.weight_decay})"
        )

    @property
    def plain(self):
        """Whether this is the notebook's step, which a model's own ``sgd_step`` may take."""
        return self.rule == "sgd" and self.weight_decay == 0

    @property
    def code(self):
        """The rule's code in the compiled loops (sgd with weight decay runs as momentum 0)."""
        return RULES.index("momentum" if self.rule == "sgd" and not self.plain else self.rule)

    def prepare(self, model, size, dtype):
        """Zero state for P = ``size`` weights of ``model``, unless it holds theirs already.

        An optimizer is bound to the model it first updates: its state is that model's
        velocities or moments, and carrying them to another model, however alike, would
        be silently wrong.
        """
        if self._model is not None and self._model is not model and self.t:
            raise ValueError(
                "this optimizer holds the state of another model: give each model an "
                "Optimizer of its own"
            )
        self._model = model  # a reference, not a weak one: pickled beside its model
        if self.slots is None or self.slots.shape != (2, size) or self.slots.dtype != dtype:
            if self.slots is not None and self.t:
                raise ValueError(
                    f"this optimizer holds the state of a model of {self.slots.shape[1]} "
                    f"{self.slots.dtype} weights, not {size} {np.dtype(dtype)}: use a new one"
                )
            self.slots = np.zeros((2, size), dtype=dtype)

    def hyper(self, dtype):
        """momentum (0 for sgd), beta1, beta2, eps and weight_decay: an array of ``dtype``."""
        momentum = self.momentum if self.rule in ("momentum", "nesterov") else 0.0
        values = (momentum, self.beta1, self.beta2, self.eps, self.weight_decay)
        return np.array(values, dtype=dtype)

    def rates(self, lrate, dtype, scales):
        """The next ``len(scales)`` updates' step sizes and gradient scales (from update
        ``t + 1``), computed in float64 on every path.

        Args:
            lrate (float): The step size.
            dtype: The model's.
            scales (ndarray): Each step's factor of its summed gradient (1 / the
                batch's weight for the batch mean, else 1), float64.

        Returns:
            ndarray: 2 by ``len(scales)`` of ``dtype``: row 0 the step sizes (``lrate``
                times the scale, or Adam's with its bias corrections), row 1 Adam's
                scale of G (1 for the other rules, linear in the step size).

        """
        rates = np.ones((2, scales.size), dtype=dtype)
        if self.rule != "adam":
            rates[0] = lrate * scales
            return rates
        t = np.arange(self.t + 1, self.t + scales.size + 1, dtype=np.float64)
        rates[0], rates[1] = lrate * np.sqrt(1 - self.beta2**t) / (1 - self.beta1**t), scales
        return rates

    def update(self, model, lrate, scale=1.0):
        """One step on every Linear layer of ``model`` from its dLdW and dLdW0 (the layer path),
        their sum scaled by ``scale`` (1 / b: the batch mean) as ``rates`` scales it."""
        dtype = model.linear_layers[0].W.dtype
        (step,), (scale,) = self.rates(lrate, dtype, np.array([scale], dtype=np.float64))
        self.t += 1
        momentum, beta1, beta2, eps, decay = self.hyper(dtype)
        offset = 0
        for layer in model.linear_layers:
            kernels = layer.kernels
            for name, grad, rate in (("_W", layer.dLdW, decay), ("_W0", layer.dLdW0, 0 * decay)):
                W = getattr(layer, name)
                state = self.slots[:, offset : offset + W.size]
                S0, S1 = state[0].reshape(W.shape), state[1].reshape(W.shape)
                if self.rule == "adam":
                    W, S0[...], S1[...] = kernels.adam_update(W, S0, S1, grad, step, beta1, beta2,
                                                              eps, rate, scale)  # fmt: skip
                else:
                    kernel = (
                        kernels.nesterov_update
                        if self.rule == "nesterov"
                        else kernels.momentum_update
                    )
                    W, S0[...] = kernel(W, S0, grad, step, momentum, rate)
                setattr(layer, name, W)
                offset += W.size


def as_optimizer(optimizer, **hyper):
    """``optimizer`` (a rule's name or an ``Optimizer``) as an Optimizer; ``hyper`` for a name."""
    if isinstance(optimizer, Optimizer):
        if hyper:
            raise TypeError(
                f"give {sorted(hyper)} to the Optimizer itself, not beside optimizer={optimizer!r}"
            )
        return optimizer
    if not isinstance(optimizer, str):
        raise TypeError(f"optimizer must be one of {RULES} or an Optimizer, got {optimizer!r}")
    return Optimizer(optimizer, **hyper)


def _fraction(name, value, high=1.0):
    """A float in [0, high), named in the error otherwise."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not 0 <= number < high:
        upper = "" if high == math.inf else f" and < {high}"
        raise ValueError(f"{name} must be a number >= 0{upper}, got {value!r}")
    return number
