"""Many models of one architecture trained at once: the compiled loop of ``fastffn.sweep``.

Every array has the model axis last, so that each weight, activation and
gradient of M models lies together in memory and one SIMD instruction updates
several models (``_lanes``); groups of models run on separate threads, one a
core (``sweep_groups.train_here``). Each model's arithmetic is the one-model loop's,
summed in the same order along a column: its numbers are those of training it
alone, within the tolerance.

The loop is written out for each architecture and batch size (``kernels``):
every module's widths and offsets are numbers in its source, so LLVM unrolls
the small loops and folds every row's address into the instructions (a W5 step
of 8 models: 1.19-1.22 us with the widths read at run time, 0.80-0.83 us with
them in the source, the same weights, same process; 0.63-0.66 us with the
updates in place and the exp in SIMD lanes). The accuracies (``correct``) take
``POINTS`` training points at a time, each weight loaded once for all of them:
the final accuracies of the Dask run's 64-64-64-10 groups on 10,000 points
took 150 ms a group, and 60-90 so.
The source is generated once, saved in the cache directory beside Numba's
compiled code, and compiled there like any other module: a later process loads
the machine code from Numba's cache.

Shapes (G groups of M models, P weights a model, as ``numba_loop.sgd_steps`` lays
them out; b samples a batch):

- ``params``: G by P by M, updated in place;
- ``indices``: G by iters by b by M, the columns each model draws;
- ``lrates``: G by M, of the model's dtype;
- ``record_losses``, ``record_hits``: G by R by M, the loss and the count of
  training points classified right at each record of the steps of the call
  (iteration ``it`` with ``it % every == 1 % every``);
- ``stopped``: G by M int64, the iteration at which a model's loss, gradients or
  outputs stopped being finite (that step not applied, the model's weights kept
  from before it), else -1.
"""

import functools
import hashlib
import importlib.util
import os
import sys
import textwrap
import threading

from ._lanes import LANES
from ._numba_cache import cache_dir
from ._sweep_template import TEMPLATE
from .ops import ELEMENTWISE, LINEAR, SOFTMAX

__all__ = ["LANES", "kernels", "source"]

#: Training points whose outputs ``correct`` computes together (``_forward``).
POINTS = 4

_KERNELS, _LOCK = {}, threading.Lock()


def kernels(ops, shapes, coefs, b):
    """The compiled loop of one architecture and batch size, generated on first use.

    Args:
        ops (ndarray): The L module op codes (``backends.OPS``).
        shapes (ndarray): L by 3: each module's m, n and weight offset, and
        coefs (ndarray): each module's coefficient (``backends.Packed``).
        b (int): Samples a batch.

    Returns:
        module: Its ``group_steps(params, XT, YT, indices, lrates, tiny, first,
            every, rec_losses, rec_hits, stopped)`` runs steps ``first`` on of
            one group (the module docstring's arrays, without their G axis;
            no GIL held) and ``group_correct(params, XT, YT, hits)`` counts
            each model's right answers into ``hits`` (M,).

    """
    key = (
        tuple(int(o) for o in ops),
        tuple(tuple(int(v) for v in s) for s in shapes),
        tuple(float(c) for c in coefs),
        int(b),
    )
    with _LOCK:
        if key not in _KERNELS:
            _KERNELS[key] = _load(source(*key))
        return _KERNELS[key]


def _load(text):
    """The module of source ``text``, from a file of the cache directory named by its
    hash (written if new), so that Numba caches its functions; in memory if the
    directory cannot be written."""
    name = "fastffn_sweep_" + hashlib.sha256(text.encode()).hexdigest()[:20]
    path = os.path.join(cache_dir(), "sweep", name + ".py")
    try:
        if not os.path.exists(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            partial = f"{path}.{os.getpid()}.{threading.get_ident()}"
            with open(partial, "w") as file:
                file.write(text)
            os.replace(partial, path)  # whole or not at all, for processes that race
    except OSError:
        path = None
    spec = importlib.util.spec_from_loader(name, loader=None, origin=path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # where Numba looks a cached function's module up
    exec(compile(text, path or f"<{name}>", "exec"), module.__dict__)
    return module


def source(ops, shapes, coefs, b):
    """The Python source of ``kernels(ops, shapes, b)``."""
    d = shapes[0][0]
    width = max(d, *(n for _, n, _ in shapes))  # the most numbers at a module's input or output
    L = len(ops)

    at = functools.partial(_first_row, samples=b, width=width)

    backward, checks, updates = [], [], []
    for k in range(L - 2, -1, -1):
        op, (m, n, base) = ops[k], shapes[k]
        a, g = at(k, "j"), at(k + 1, "j")  # the rows of module k's input and output
        if op == LINEAR:
            # dW = a g.T and dW0 = g summed over the batch, as the one-model loop sums them
            w, w0 = f"{base} + r * {n} + i", f"{base + m * n} + i"
            dw = (
                f"for r in range({m}):\n"
                f"    for i in range({n}):\n"
                f"        dw = fma(row(acts, {at(k, 0)} + r), row(grad, {at(k + 1, 0)}+i), zero)\n"
                f"        for j in range(1, {b}):\n"
                f"            dw = fma(row(acts, {a} + r), row(grad, {g} + i), dw)\n"
                f"        {{dw}}\n"
                f"for i in range({n}):\n"
                f"    db = zero\n"
                f"    for j in range({b}):\n"
                f"        db = add(db, row(grad, {g} + i))\n"
                f"    {{db}}\n"
            )
            updates.append(
                dw.format(
                    dw=f"put(params, {w}, sub(row(params, {w}), mul(rate, dw)))",
                    db=f"put(params, {w0}, sub(row(params, {w0}), mul(rate, db)))",
                )
            )
            checks.append(
                dw.format(dw="check = fma(dw, zero, check)", db="check = fma(db, zero, check)")
            )
            # |dW| <= sum |a| sum |g| and |dW0| <= sum |g|, NaN if one is NaN or inf
            body = (
                f"sa = sg = zero\n"
                f"for j in range({b}):\n"
                f"    for r in range({m}):\n"
                f"        sa = add(sa, absolute(row(acts, {a} + r)))\n"
                f"    for i in range({n}):\n"
                f"        sg = add(sg, absolute(row(grad, {g} + i)))\n"
                f"bound = add(bound, add(mul(sa, sg), sg))\n"
            )
            if k > 0:  # W g, the gradient by the module's input, before W changes
                body += f"for j in range({b}):\n" + textwrap.indent(
                    _matvec("params", base, n, 1, g, a, m, n, X="grad", Y="grad"), "    "
                )
        else:  # the gradient at the output's rows into the input's
            name = ELEMENTWISE[op]
            body = (
                f"for j in range({b}):\n"
                f"    for i in range({n}):\n"
                f"        out, g = row(acts, {g} + i), row(grad, {g} + i)\n"
                f"        put(grad, {a} + i, {name}_grad_lanes(out, g, {_coef(coefs[k])}))\n"
            )
        backward.append(f"# module {k}\n{body}")

    names = sorted({ELEMENTWISE[op] for op in ops if op in ELEMENTWISE})
    return TEMPLATE.format(
        elementwise=", ".join(f"{name}, {name}_grad" for name in names),
        lanes="".join(_lanes(name) for name in names),
        L=L, b=b, width=width, d=d, classes=shapes[-1][1], out=at(L, "j"), last=at(L - 1, "j"),
        points=POINTS, points_out=f"{L * POINTS * width} + j * {width}",
        forward=textwrap.indent(_forward(ops, shapes, coefs, b, width), "    "),
        forward_points=textwrap.indent(
            _forward(ops, shapes, coefs, POINTS, width, points=True), "    "
        ),
        backward=textwrap.indent("".join(backward), "        "),
        checks=textwrap.indent("".join(checks), "            "),
        updates=textwrap.indent("".join(updates), "        "),
    )  # fmt: skip


def _first_row(k, j, samples, width):
    """The first row of module k's input for sample j (a name or a number) in a buffer of
    ``samples`` samples a module, ``width`` rows a sample."""
    if isinstance(j, str):
        return f"({k * samples * width} + {j} * {width})"
    return (k * samples + j) * width


def _forward(ops, shapes, coefs, samples, width, points=False):
    """Source of the forward pass of ``samples`` samples, every model (module k's input
    for sample j in the rows from ``(k samples + j) width`` of ``acts``).

    Each sample's products as ``_matvec`` sums them; with ``points`` (``samples`` is
    ``POINTS``) the samples' sums run side by side, each weight's row loaded once
    for all of them: a wide network's weights do not stay in L1, and loading them
    for each sample made ``correct`` bound by reading them from L2.
    """

    at = functools.partial(_first_row, samples=samples, width=width)

    text = []
    for k, (op, (m, n, base)) in enumerate(zip(ops, shapes, strict=True)):
        a, z = at(k, "j"), at(k + 1, "j")
        bias = f"row(params, {base + m * n} + i)"
        if op == LINEAR and points:  # sum_c W[c, o] a_c from 0, c ascending, then + W0[o]
            sums = " = ".join(f"s{j}" for j in range(samples))
            steps = "".join(
                f"        s{j} = fma(v, row(acts, {at(k, j)} + c), s{j})\n" for j in range(samples)
            )
            stores = "".join(
                f"    put(acts, {at(k + 1, j)} + i, add(s{j}, {bias}))\n" for j in range(samples)
            )
            text.append(
                f"for i in range({n}):  # module {k}\n    {sums} = zero\n"
                f"    for c in range({m}):\n        v = row(params, {base} + c * {n} + i)\n"
                f"{steps}{stores}"
            )
            continue
        if op == LINEAR:  # W.T @ a + W0, as the one-model loop sums it
            body = _matvec("params", base, 1, n, a, z, n, m) + (
                f"for i in range({n}):\n    put(acts, {z} + i, add(row(acts, {z} + i), {bias}))\n"
            )
        elif op != SOFTMAX:
            body = (
                f"for i in range({n}):\n"
                f"    x = row(acts, {a} + i)\n"
                f"    put(acts, {z} + i, {ELEMENTWISE[op]}_lanes(x, {_coef(coefs[k])}))\n"
            )
        else:  # softmax, shifted by each model's maximum
            body = (
                f"top = row(acts, {a})\n"
                f"for i in range(1, {n}):\n"
                f"    top = maximum(top, row(acts, {a} + i))\n"
                f"total = zero\n"
                f"for i in range({n}):\n"
                f"    put(acts, {z} + i, exp(sub(row(acts, {a} + i), top)))\n"
                f"    total = add(total, row(acts, {z} + i))  # as stored: in the model's dtype\n"
                f"for i in range({n}):\n"
                f"    put(acts, {z} + i, div(row(acts, {z} + i), total))\n"
            )
        text.append(f"for j in range({samples}):  # module {k}\n" + textwrap.indent(body, "    "))
    return "".join(text)


def _lanes(name):
    """Source of ``<name>_lanes(x, c)`` and ``<name>_grad_lanes(a, g, c)``: elementwise op
    ``name``'s functions of ``ops`` on each of the LANES models of a row."""
    xs = ", ".join(f"x{q}" for q in range(LANES))
    gs = ", ".join(f"g{q}" for q in range(LANES))
    forward = ", ".join(f"{name}(x{q}, c)" for q in range(LANES))
    backward = ", ".join(f"{name}_grad(x{q}, g{q}, c)" for q in range(LANES))
    return (
        f"\n\n@jit\ndef {name}_lanes(x, c):\n    {xs} = x\n    return {forward}\n"
        f"\n\n@jit\ndef {name}_grad_lanes(a, g, c):\n    {xs} = a\n    {gs} = g\n"
        f"    return {backward}\n"
    )


def _coef(c):
    """Source for coefficient c (a module's ``coefs`` entry) in the model's dtype."""
    return f"params.dtype.type({float(c)!r})"


def _matvec(V, first, so, sc, x0, y0, nout, nin, X="acts", Y="acts"):
    """Source setting ``Y[y0 + o]`` to the sum over c < nin, c ascending, of
    ``V[first + o so + c sc] X[x0 + c]``, for o < nout: a product with a weight
    matrix's rows (so, sc = 1, n) or columns (n, 1). Four outputs at a time:
    four sums in flight, each row of X loaded once for them."""
    fours = nout // 4 * 4
    text = (
        f"for o in range(0, {fours}, 4):\n"
        f"    s0 = s1 = s2 = s3 = zero\n"
        f"    for c in range({nin}):\n"
        f"        x, v = row({X}, {x0} + c), {first} + o * {so} + c * {sc}\n"
        f"        s0 = fma(row({V}, v), x, s0)\n"
        f"        s1 = fma(row({V}, v + {so}), x, s1)\n"
        f"        s2 = fma(row({V}, v + {2 * so}), x, s2)\n"
        f"        s3 = fma(row({V}, v + {3 * so}), x, s3)\n"
        f"    put({Y}, {y0} + o, s0)\n"
        f"    put({Y}, {y0} + o + 1, s1)\n"
        f"    put({Y}, {y0} + o + 2, s2)\n"
        f"    put({Y}, {y0} + o + 3, s3)\n"
    )
    if fours < nout:
        text += (
            f"for o in range({fours}, {nout}):\n"
            f"    s = zero\n"
            f"    for c in range({nin}):\n"
            f"        s = fma(row({V}, {first} + o * {so} + c * {sc}), row({X}, {x0} + c), s)\n"
            f"    put({Y}, {y0} + o, s)\n"
        )
    return text
