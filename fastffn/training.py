"""Whole SGD iterations in one jitted call, for models made of built-in layers.

A ``Sequential`` of ``Linear``/``Tanh``/``ReLU`` layers ending in ``SoftMax``
with an ``NLL`` loss, all on the numba backend, trains here with no Python per
step. The model becomes a list of op codes and one flat buffer holding every
weight; the layers' ``W`` and ``W0`` become views into that buffer, so they see
each step as it is taken and the report lines between chunks read them as usual.

The loop itself, ``sgd_steps``, is jitted in ``backends/numba.py`` beside the
kernels it calls. Each step is the notebook's: forward, loss, backward, then the
update, with those kernels run into buffers allocated once per call. The
only change is at the top of the backward pass, where softmax and NLL are
differentiated together (``softmax_nll_backward``), which the equivalence tests
show gives the reference's weights to 1e-10 after thousands of steps.
"""

import numpy as np

from .backends.numba import LINEAR, RELU, SOFTMAX, TANH, sgd_steps, transposed
from .layers import NLL, Linear, ReLU, SoftMax, Tanh

OPS = {Linear: LINEAR, Tanh: TANH, ReLU: RELU, SoftMax: SOFTMAX}


class CompiledSGD:
    """A model's layers as op codes and one flat weight buffer, for ``sgd_steps``.

    Build it with ``CompiledSGD.of(model)``, which gives None for a model that
    cannot train here (a layer of the user's own, no final SoftMax + NLL, Linear
    layers of different dtypes); the caller checks that every layer is on the
    numba backend. Such a model trains layer by layer, with the same results.
    """

    def __init__(self, modules, width):
        """Packs ``modules`` (built-in layers) for inputs of ``width`` rows."""
        self.ops = np.array([OPS[type(m)] for m in modules], dtype=np.int64)
        self.shapes = np.zeros((len(modules), 3), dtype=np.int64)
        linear = [m for m in modules if type(m) is Linear]
        self.params = np.concatenate([a.ravel() for m in linear for a in (m.W, m.W0)])
        offset = 0
        for k, module in enumerate(modules):
            if type(module) is not Linear:
                self.shapes[k] = 0, width, 0
                continue
            m, n = module.W.shape
            self.shapes[k] = m, n, offset
            # The layer's weights become views of the buffer sgd_steps updates.
            module.W = self.params[offset : offset + m * n].reshape(m, n)
            module.W0 = self.params[offset + m * n : offset + m * n + n].reshape(n, 1)
            offset += m * n + n
            width = n

    @classmethod
    def of(cls, model):
        """The compiled form of ``model``, or None where it cannot run compiled."""
        modules = model.modules
        built_in = all(type(m) in OPS for m in modules) and type(model.loss) is NLL
        if not (built_in and modules and type(modules[-1]) is SoftMax):
            return None
        if SoftMax in map(type, modules[:-1]) or not any(type(m) is Linear for m in modules):
            return None
        if len({m.W.dtype for m in model.linear_layers}) > 1:  # one buffer holds one dtype
            return None
        return cls(modules, model.linear_layers[0].m)

    @staticmethod
    def as_rows(X, Y):
        """X and Y transposed, one sample per row, as ``run`` takes them."""
        return transposed(X), transposed(Y)

    def run(self, XT, YT, indices, lrate):
        """Takes one SGD step per row of ``indices``, on samples given as rows.

        Returns:
            tuple: The number of steps taken (fewer if one diverged) and the
                losses of all steps, that of the diverging one included.

        """
        losses = np.full(len(indices), np.nan, dtype=XT.dtype)
        lrate = XT.dtype.type(lrate)
        done = sgd_steps(self.ops, self.shapes, self.params, XT, YT, indices, lrate, losses)
        return done, losses
