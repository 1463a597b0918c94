"""asv: every kernel of the table, on each backend, over sizes.

The kernels come from ``fastffn.testing.KERNELS``, the table the equivalence
tests read, so no kernel can be left out here.
"""

import functools

import numpy as np

from fastffn.backends import BACKENDS
from fastffn.testing import KERNELS, worst_difference

from . import workloads

# The reference forms an n x n x b Jacobian; past this it cannot run on our machines.
REFERENCE_JACOBIAN_LIMIT = 2**30  # bytes
JACOBIAN_KERNELS = ("softmax_backward", "softmax_nll_backward")


def reference_too_big(name, backend, n, b, dtype):
    return (
        backend == "numpy"
        and name in JACOBIAN_KERNELS
        and n * n * b * dtype.itemsize > (REFERENCE_JACOBIAN_LIMIT)
    )


class Kernels:
    """Each kernel at widths 10 to 1024 (classes for softmax and NLL), batches 1 to 1024."""

    params = (list(KERNELS), list(BACKENDS), [10, 256, 1024], [1, 1024], ["float64", "float32"])
    param_names = ("kernel", "backend", "width", "batch", "dtype")

    def setup(self, name, backend, width, batch, dtype):
        dtype = np.dtype(dtype)
        if reference_too_big(name, backend, width, batch, dtype):
            raise NotImplementedError("the reference's Jacobian would not fit in memory")
        self.run = workloads.kernel_call(name, backend, width, width, batch, dtype)  # compiles

    def time_kernel(self, name, backend, width, batch, dtype):
        self.run()


class Functional:
    """Each ``fastffn.functional`` function, its checks included, beside its NumPy formula."""

    params = (list(workloads.functional_calls()), [(10, 10, 1), (256, 256, 128)])
    param_names = ("function", "m, n, b")

    def setup(self, name, size):
        function, args, self.formula = workloads.functional_calls(np.float64, *size)[name]
        self.call = functools.partial(function, *args)
        self.call()  # compiles

    def time_functional(self, name, size):
        self.call()

    def time_formula(self, name, size):
        self.formula()


class SoftmaxBackward:
    """W3: the softmax backward alone, from 2 to 1000 classes, batch 128."""

    params = (list(BACKENDS), [2, 10, 100, 1000], ["float64", "float32"])
    param_names = ("backend", "classes", "dtype")

    def setup(self, backend, classes, dtype):
        self.run = workloads.kernel_call("softmax_backward", backend, 1, classes, 128, dtype)

    def time_softmax_backward(self, backend, classes, dtype):
        self.run()

    def peakmem_softmax_backward(self, backend, classes, dtype):
        self.run()


class KernelAgreement:
    """The largest difference of numba from the reference, in units of the tolerance."""

    params = (list(KERNELS), ["float64", "float32"])
    param_names = ("kernel", "dtype")
    unit = "tolerances"

    def track_max_difference(self, name, dtype):
        kernel, dtype = KERNELS[name], np.dtype(dtype)
        args = kernel.inputs(np.random.default_rng(0), dtype, 64, 32, 16)
        return worst_difference(kernel("numba", *args), kernel("numpy", *args))
