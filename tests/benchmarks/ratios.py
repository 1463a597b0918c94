"""Prints the numba/numpy speed-ups of a pytest-benchmark JSON file; exits 1 on a loss.

Usage: python tests/benchmarks/ratios.py benchmark.json
       python tests/benchmarks/ratios.py --markdown benchmark.json   (the README's speed table)

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


#: What the README's table calls each path that a workload's fastffn (numba) time is set against.
PEERS = {
    "jax": "JAX",
    "scikit-learn": "scikit-learn",
    "notebook": "the notebook's NumPy",
    "numpy": "fastffn's numpy backend",
    "one after another": "one model after another",
}


def markdown(run):
    """The README's speed table: each workload (W1-W5) that fastffn's numba backend ran, its
    time, and each peer's time with fastffn's speed as a multiple of it, all from ``run``
    (pytest-benchmark's JSON), with the machine and the commit it ran on."""
    lines = ["| workload | fastffn | against, same run |", "| --- | --- | --- |"]
    for workload, times, _, _ in table(run["benchmarks"]):
        fast = times.get("numba")
        peers = [(PEERS[name], t) for name, t in times.items() if name in PEERS]
        if not (workload.startswith("W") and fast and peers):
            continue
        against = "; ".join(f"{name} {t * 1e3:.3g} ms: **{t / fast:.2f}x**" for name, t in peers)
        lines.append(f"| {workload} | {fast * 1e3:.3g} ms | {against} |")
    machine, commit = run["machine_info"], run.get("commit_info", {})
    cpu = machine.get("cpu", {})
    lines.append("")
    lines.append(
        f"Minimum times of one `pytest tests/benchmarks` run at {commit.get('id', '?')[:7]} "
        f"({run.get('datetime', '?')[:10]}) on {cpu.get('brand_raw', '?')}, "
        f"{cpu.get('count', '?')} cores, Python {machine.get('python_version', '?')}."
    )
    return "\n".join(lines)


def slowdowns(rows):
    """'workload beside a busy process: numba N.NNx slower (quiet q ms, busy b ms), JAX ...'
    for each busy-machine workload, each library's slowdown side by side."""
    found = defaultdict(dict)
    for workload, times, _, _ in rows:
        base, _, library = workload.rpartition(" (")
        if base.endswith("beside a busy process") and {"quiet", "busy"} <= times.keys():
            found[base][library.rstrip(")")] = times
    return [
        f"{base}: "
        + "; ".join(
            f"{'JAX' if lib == 'jax' else lib} {t['busy'] / t['quiet']:.2f}x slower "
            f"(quiet {t['quiet'] * 1e3:.3g} ms, busy {t['busy'] * 1e3:.3g} ms)"
            for lib, t in libraries.items()
        )
        for base, libraries in found.items()
    ]


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
        others = describe(times, reference, ("numpy", "numba", "jax", "BLAS bound"))
        if "BLAS bound" in times:  # the epoch's matrix products alone: numba's time over it
            bound = times["BLAS bound"]
            others = f"BLAS bound {bound * 1e3:.3g} ms (numba {fast / bound:.2f}x the bound)"
        if same:
            others = "the same function in both backends (NumPy's)"
        print(
            f"{workload:<{width}}  {reference * 1e3:8.3g}ms  {fast * 1e3:8.3g}ms  "
            f"{ratio:7.2f}x  {versus_jax:>7}  {others}"
        )
        if gate and ratio < 1:
            failures.append(f"{workload}: numba is {1 / ratio:.2f}x slower than numpy")
    for line in slowdowns(rows):
        print(line)
    for failure in failures:
        print("FAIL", failure)
    return 1 if failures else 0


if __name__ == "__main__":
    if sys.argv[1] == "--markdown":
        with open(sys.argv[2]) as f:
            print(markdown(json.load(f)))
    else:
        sys.exit(main(sys.argv[1]))
