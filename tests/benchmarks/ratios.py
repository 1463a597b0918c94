"""Prints the numba/numpy speed-ups of a pytest-benchmark JSON file; exits 1 on a loss.

Usage: python tests/benchmarks/ratios.py benchmark.json

Each benchmark's extra_info names its workload and backend (or training path).
Speed-ups compare minimum times measured in the same run, the least noisy
statistic on a shared machine; "vs JAX" is numba's speed as a multiple of
JAX's where JAX ran (the ``compare`` extra). A workload marked ``gate`` fails the run when
the numba backend is slower than the numpy reference there.
"""

import json
import sys
from collections import defaultdict


def table(benchmarks):
    """Rows of (workload, {backend: seconds}, gate, same function), in the file's order.

    A benchmark that ran several paths alternately gives each one's minimum in its
    extra_info's ``paths``; ``same_function`` marks a kernel both backends run as one
    function (a tie by construction, whatever its ratio in a run).
    """
    times, gates, same = defaultdict(dict), {}, set()
    for bench in benchmarks:
        info = bench["extra_info"]
        paths = info.get("paths", {info["backend"]: bench["stats"]["min"]})
        times[info["workload"]].update(paths)
        gates[info["workload"]] = info.get("gate", False)
        if info.get("same_function"):
            same.add(info["workload"])
    return [(workload, times[workload], gates[workload], workload in same) for workload in times]


def describe(times, reference, skip=("numpy", "numba")):
    """'name time (speed-up)' for each backend not in ``skip``."""
    return ", ".join(
        f"{name} {t * 1e3:.3g} ms" + (f" ({reference / t:.2f}x)" if reference else "")
        for name, t in times.items()
        if name not in skip
    )


def main(path):
    with open(path) as f:
        rows = table(json.load(f)["benchmarks"])
    width = max(len(w) for w, *_ in rows)
    header = f"{'numpy':>10}  {'numba':>10}  {'speed-up':>8}  {'vs JAX':>7}  other"
    print(f"{'workload':<{width}}  {header}")
    failures = []
    for workload, times, gate, same in rows:
        reference, fast, jax = times.get("numpy"), times.get("numba"), times.get("jax")
        # numba's speed as a multiple of JAX's, measured in the same run.
        versus_jax = f"{jax / fast:6.2f}x" if jax and fast else ""
        if reference is None or fast is None:
            ms = f"{fast * 1e3:8.3g}ms" if fast else ""
            others = describe(times, None, ("numba", "jax"))
            if fast:  # numba's speed as a multiple of each other path's
                others = ", ".join(
                    f"{name} {t * 1e3:.3g} ms (numba {t / fast:.2f}x)"
                    for name, t in times.items()
                    if name not in ("numba", "jax")
                )
            print(f"{workload:<{width}}  {'':>10}  {ms:>10}  {'':>8}  {versus_jax:>7}  {others}")
            continue
        ratio = reference / fast
        others = describe(times, reference, ("numpy", "numba", "jax"))
        if same:
            others = "the same function in both backends (NumPy's)"
        print(
            f"{workload:<{width}}  {reference * 1e3:8.3g}ms  {fast * 1e3:8.3g}ms  "
            f"{ratio:7.2f}x  {versus_jax:>7}  {others}"
        )
        if gate and ratio < 1:
            failures.append(f"{workload}: numba is {1 / ratio:.2f}x slower than numpy")
    for failure in failures:
        print("FAIL", failure)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
