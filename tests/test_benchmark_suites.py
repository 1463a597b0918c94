"""Both benchmark suites cover the whole kernel table, and the CI ratio gate can fail."""

import json

import pytest

from benchmarks import bench_kernels
from fastffn import backends
from fastffn.backends import BACKENDS
from fastffn.testing import KERNELS

from .benchmarks import ratios, test_speed


def parametrized(test, argname):
    """The values a pytest test is parametrized with for ``argname``."""
    (mark,) = [m for m in test.pytestmark if m.name == "parametrize" and m.args[0] == argname]
    return list(mark.args[1])


class Benchmark:
    """pytest-benchmark's fixture as ``test_speed.measure`` uses it: runs the function once."""

    def __init__(self):
        self.extra_info, self.calls = {}, 0

    def __call__(self, run):
        self.calls += 1
        return run()


def test_pytest_benchmark_times_every_kernel_on_every_backend():
    assert parametrized(test_speed.test_kernel, "name") == list(KERNELS)
    benchmark = Benchmark()
    test_speed.test_kernel(benchmark, "relu_forward", "notebook", "float32")
    assert benchmark.calls == 1
    assert list(benchmark.extra_info["paths"]) == list(BACKENDS)
    assert all(seconds > 0 for seconds in benchmark.extra_info["paths"].values())


def test_asv_times_every_kernel_on_every_backend_and_tracks_its_agreement():
    assert bench_kernels.Kernels.params[0] == list(KERNELS)
    assert bench_kernels.Kernels.params[1] == list(BACKENDS)
    assert bench_kernels.KernelAgreement.params[0] == list(KERNELS)


def write_results(path, times, gate):
    benchmarks = [
        {"extra_info": {"workload": "W1", "backend": b, "gate": gate}, "stats": {"min": t}}
        for b, t in times.items()
    ]
    path.write_text(json.dumps({"benchmarks": benchmarks}))
    return str(path)


@pytest.mark.parametrize(
    ("numba_seconds", "gate", "status"),
    [(0.01, True, 0), (2.0, True, 1), (2.0, False, 0)],
    ids=["faster", "slower on a gated workload", "slower, not gated"],
)
def test_ratio_table_fails_only_when_numba_loses_a_gated_workload(
    tmp_path, capsys, numba_seconds, gate, status
):
    path = write_results(tmp_path / "b.json", {"numpy": 1.0, "numba": numba_seconds}, gate)
    assert ratios.main(path) == status
    out = capsys.readouterr().out
    assert f"{1.0 / numba_seconds:7.2f}x" in out
    assert ("FAIL W1: numba is 2.00x slower than numpy" in out) == bool(status)


def test_ratio_table_says_where_both_backends_run_one_function(tmp_path, capsys):
    bench = {"workload": "tanh_forward", "paths": {"numpy": 1.0, "numba": 1.01}}
    path = tmp_path / "b.json"
    for same in (True, False):
        info = {**bench, "backend": "numpy and numba", "same_function": same}
        path.write_text(json.dumps({"benchmarks": [{"extra_info": info, "stats": {"min": 2.0}}]}))
        assert ratios.main(str(path)) == 0
        assert ("the same function in both backends" in capsys.readouterr().out) == same


def test_a_kernel_the_numba_backend_takes_from_the_reference_is_marked_so():
    benchmark = Benchmark()
    test_speed.test_kernel(benchmark, "tanh_forward", "notebook", "float64")
    numba, numpy = (backends.load(b).tanh_forward for b in ("numba", "numpy"))
    assert benchmark.extra_info["same_function"] == (numba is numpy)
    test_speed.test_kernel(benchmark, "relu_forward", "notebook", "float64")
    assert benchmark.extra_info["same_function"] is False


def test_ratio_table_prints_each_slowdown_beside_a_busy_process_next_to_jaxs(tmp_path, capsys):
    rows = [
        {"workload": f"W2 beside a busy process ({lib})", "backend": "quiet and busy",
         "paths": {"quiet": 0.1, "busy": busy}}
        for lib, busy in (("numba", 0.23), ("jax", 0.127))
    ]  # fmt: skip
    path = tmp_path / "b.json"
    path.write_text(json.dumps({"benchmarks": [{"extra_info": r, "stats": {"min": 1.0}}
                                               for r in rows]}))  # fmt: skip
    assert ratios.main(str(path)) == 0
    line = [
        x for x in capsys.readouterr().out.splitlines() if x.startswith("W2 beside a busy process:")
    ]
    assert line == ["W2 beside a busy process: numba 2.30x slower (quiet 100 ms, busy 230 ms); "
                    "JAX 1.27x slower (quiet 100 ms, busy 127 ms)"]  # fmt: skip


def test_the_spinner_keeps_a_core_busy_only_while_a_busy_run_runs():
    import time

    from benchmarks import workloads

    spinner = workloads.Spinner()
    try:
        usage = lambda: sum(map(int, open(f"/proc/{spinner.process.pid}/stat").read()  # noqa: E731
                                .rsplit(")", 1)[1].split()[11:13]))  # fmt: skip
        before = usage()
        time.sleep(0.3)
        assert usage() - before <= 2  # stopped: no clock ticks
        before = usage()
        spinner.beside(lambda: time.sleep(0.5))()
        assert usage() - before >= 20  # about 50 ticks of 10 ms while the run ran
    finally:
        spinner.close()
