"""A model as the compiled loops take it: which models they can run, and their weights
as one flat buffer (``backends.Packed``) and back."""

import numpy as np

from . import backends
from .backends import ACCURACY_BLOCK, OPS, Packed, aot
from .layers import NLL, Linear, SoftMax, is_builtin

#: Sequential's methods a compiled run stands in for.
METHODS = ("forward", "backward", "sgd_step", "print_accuracy")
#: Data smaller than this (in numbers) are transposed by NumPy, not a compiled kernel.
TRANSPOSE_MIN_SIZE = 1 << 16


def compilable(model):
    """Whether ``CompiledRunner`` gives what the model's Python methods would."""
    modules, loss = model.modules, model.loss
    if not all(map(is_builtin, [*modules, loss])) or type(loss) is not NLL:
        return False
    if type(modules[-1]) is not SoftMax or SoftMax in map(type, modules[:-1]):
        return False
    linear = model.linear_layers
    if not linear or len({m.W.dtype for m in linear}) > 1:  # one buffer holds one dtype
        return False
    if len({id(m) for m in modules}) < len(modules):  # a layer used twice
        return False
    # A method of the user's own may read what the loop does not keep (activations, gradients).
    if any(model._overrides(name) for name in METHODS):
        return False
    return all((m.backend or backends.get_backend()) == "numba" for m in [*modules, loss])


def hits_in_loop(model, X, Y):
    """How many columns of X the batch loop's counter classifies as Y says.

    For a compilable model: the counter ``sgd``'s records use at batches of more
    than one, compiled at install, so that no layer kernel compiles for an
    accuracy; at every width as fast as the layers or faster (docs/performance.md).
    X and Y checked, of the model's dtype.

    Returns:
        int or None: The count; None for any other model, or where an output
            overflowed (the layers then count as they do).

    """
    if not compilable(model):
        return None
    packed = pack(model)
    correct = aot.function("correct", packed.params.dtype)
    hits = correct(*packed, X, Y, ACCURACY_BLOCK)
    return hits if hits >= 0 else None


def pack(model):
    """A compilable model as the compiled loops take it, its weights in one fresh flat array.

    Returns:
        Packed: Its op codes, shapes, coefficients and weights.

    """
    modules, linear = model.modules, model.linear_layers
    dtype = linear[0].W.dtype
    ops = [OPS.index("linear" if type(m) is Linear else m.kernel) for m in modules]
    shapes = np.zeros((len(modules), 3), dtype=np.int64)
    coefs = np.zeros(len(modules), dtype=dtype)
    width, offset = linear[0].m, 0
    for k, module in enumerate(modules):
        if type(module) is Linear:
            shapes[k] = *module.W.shape, offset
            width = module.n
            offset += module.W.size + module.n
        else:
            shapes[k] = 0, width, 0
            coefs[k] = sum(module.coefficients(dtype))  # its one coefficient, or 0
    params = np.concatenate([a.ravel() for m in linear for a in (m.W, m.W0)])
    return Packed(np.array(ops, dtype=np.int64), shapes, coefs, params)


def attach(model, packed):
    """Makes the Linear layers' W and W0 views of ``packed.params``, laid out as ``pack`` lays
    them."""
    for module, (m, n, offset) in zip(model.modules, packed.shapes, strict=True):
        if type(module) is Linear:
            module._W = packed.params[offset : offset + m * n].reshape(m, n)
            module._W0 = packed.params[offset + m * n : offset + m * n + n].reshape(n, 1)


def samples_as_rows(X):
    """X (d by n) transposed into C order, each sample's features together, as the loops read them.

    Small data by NumPy; larger by numba's cache-blocked ``transposed``.
    """
    if X.size < TRANSPOSE_MIN_SIZE:
        return np.ascontiguousarray(X.T)
    from .backends.numba_loop import transposed

    return transposed(X)
