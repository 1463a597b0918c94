"""Whole SGD iterations in one jitted call, for models made of built-in layers.

A ``Sequential`` of ``Linear``/``Tanh``/``ReLU`` layers ending in ``SoftMax``
with an ``NLL`` loss, all on the numba backend, trains here with no Python per
step. The model becomes a list of op codes and one flat buffer holding every
weight; the layers' ``W`` and ``W0`` become views into that buffer, so they see
each step as it is taken and the report lines between chunks read them as usual.

Each step is the notebook's: forward, loss, backward, then the update, with the
kernels of ``backends/numba.py`` run into buffers allocated once per call. The
only change is at the top of the backward pass, where softmax and NLL are
differentiated together (``softmax_nll_backward``), which the equivalence tests
show gives the reference's weights to 1e-10 after thousands of steps.
"""

import numpy as np

from .backends import numba as kernels
from .layers import NLL, Linear, ReLU, SoftMax, Tanh

jit = kernels.jit

LINEAR, TANH, RELU, SOFTMAX = range(4)
OPS = {Linear: LINEAR, Tanh: TANH, ReLU: RELU, SoftMax: SOFTMAX}


@jit
def weights(params, m, n, offset):
    """Views of W (m by n) and W0 (n by 1) at ``offset`` in params; empty if m is 0."""
    bias = n if m else 0
    W = params[offset : offset + m * n].reshape((m, n))
    return W, params[offset + m * n : offset + m * n + bias].reshape((bias, 1))


@jit
def sgd_steps(ops, shapes, params, XT, YT, indices, lrate, losses):
    """Runs ``len(indices)`` SGD steps, updating ``params`` in place.

    Args:
        ops (ndarray): The L module op codes (int64), the last one SOFTMAX.
        shapes (ndarray): L by 3 int64: for a Linear module its m, n and the
            offset of its W in params (W0 follows W); for others 0, the
            width and 0.
        params (ndarray): Every weight, flat, of the model's dtype.
        XT (ndarray): The N by d transpose of the training points X, so that
            each sample's features lie together in memory.
        YT (ndarray): The N by k transpose of their one-hot classes Y.
        indices (ndarray): An iters by b int64 matrix: the columns of each batch.
        lrate (scalar): The step size, of the model's dtype.
        losses (ndarray): An iters vector that receives each step's loss.

    Returns:
        int: The number of steps taken: all of them, or the index of the first
            step whose loss or gradients were not finite (that step is not applied).

    """
    L = ops.size
    b = indices.shape[1]
    dtype = XT.dtype
    m, n, offset = shapes[:, 0], shapes[:, 1], shapes[:, 2]

    # Views into params (empty for activations), buffers for each module's output.
    # grads mirrors params, so that one flat loop checks and applies every update.
    grads = np.empty_like(params)
    views = [weights(params, m[k], n[k], offset[k]) for k in range(L)]
    W, W0 = [v[0] for v in views], [v[1] for v in views]
    views = [weights(grads, m[k], n[k], offset[k]) for k in range(L)]
    dW, dW0 = [v[0] for v in views], [v[1] for v in views]
    out = [np.empty((n[k], b), dtype=dtype) for k in range(L)]
    Xb = np.empty((XT.shape[1], b), dtype=dtype)
    Yb = np.empty((YT.shape[1], b), dtype=dtype)
    grad = [np.empty_like(Xb)] + [np.empty_like(out[k]) for k in range(L - 1)]  # by inputs

    for it in range(indices.shape[0]):
        for j in range(b):
            t = indices[it, j]
            for i in range(Xb.shape[0]):
                Xb[i, j] = XT[t, i]
            for i in range(Yb.shape[0]):
                Yb[i, j] = YT[t, i]

        A = Xb
        for k in range(L):
            op = ops[k]
            if op == LINEAR:
                kernels.linear_forward_into(W[k], W0[k], A, out[k])
            elif op == TANH:
                kernels.tanh_forward_into(A, out[k])
            elif op == RELU:
                kernels.relu_forward_into(A, out[k])
            else:
                kernels.softmax_forward_into(A, out[k])
            A = out[k]

        losses[it] = kernels.nll_forward(A, Yb)
        if not np.isfinite(losses[it]):
            return it

        kernels.softmax_nll_backward_into(A, Yb, grad[L - 1])
        for k in range(L - 2, -1, -1):
            op, g = ops[k], grad[k + 1]  # g: the gradient by module k's output
            A = Xb if k == 0 else out[k - 1]
            if op == LINEAR:
                kernels.matmul_nt_into(A, g, dW[k])
                kernels.row_sums_into(g, dW0[k])
                if k > 0:  # the gradient by the data is not needed
                    kernels.matmul_nn_into(W[k], g, grad[k])
            elif op == TANH:
                kernels.tanh_backward_into(out[k], g, grad[k])
            elif op == RELU:
                kernels.relu_backward_into(out[k], g, grad[k])

        for i in range(grads.size):
            if not np.isfinite(grads[i]):
                return it
        for i in range(params.size):
            params[i] -= lrate * grads[i]
    return indices.shape[0]


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
