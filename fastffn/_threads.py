"""How many threads fastffn's work takes, beside whatever else runs on the machine.

``default_threads`` is the count a sweep trains on and the most the compiled loops' BLAS
takes. ``BlasThreads`` sets the BLAS's threads, chunk by chunk, to the CPUs other processes
leave free: the BLAS splits each product evenly between its threads, so one thread on a
core another process keeps busy holds back the whole product (W2 in float64 beside one
spinning process: 1.7-2.1x slower on two threads, 1.5x on one).
"""

import os
import sys
import time


def default_threads():
    """The CPUs this process may use (``os.sched_getaffinity``), at most ``OMP_NUM_THREADS``
    where that is set (as joblib's workers set it), and 1 inside a Dask worker's task (the
    worker's threads hold the cores)."""
    if "distributed" in sys.modules:
        from distributed import get_worker

        try:
            get_worker()
            return 1
        except ValueError:  # not in a worker
            pass
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    limit = os.environ.get("OMP_NUM_THREADS", "")
    return max(1, min(cpus, int(limit))) if limit.isdigit() and int(limit) > 0 else cpus


#: Reads ``others_running`` takes the least of, ``RECHECK_SECONDS`` apart, where the first
#: sees another thread: a process that keeps a core busy is runnable in each, a kernel
#: thread woken for a moment (rcu_preempt, as a run frees its buffers) is gone by the next
#: (one W2 epoch in ten or twenty saw one: on one BLAS thread, 1.4x slower).
READS, RECHECK_SECONDS = 3, 5e-4


def others_running():
    """Threads of other processes running or ready to run (``/proc/loadavg``'s runnable count
    less this process's running threads, counted before and after it): the least of up to
    ``READS`` reads; 0 where there is no /proc (80 us a read)."""
    try:
        least = _others_now()
        for _ in range(READS - 1):
            if least <= 0:
                break
            time.sleep(RECHECK_SECONDS)
            least = min(least, _others_now())
    except (OSError, ValueError, IndexError):  # not Linux, or a thread gone as it was read
        return 0
    return max(0, least)


def _others_now():
    """One read of ``others_running``: our running threads counted before and after the
    runnable count, the larger taken (a thread of ours may start or stop between)."""
    ours = _ours_running()
    with open("/proc/loadavg", "rb") as f:
        running = int(f.read().split()[3].split(b"/")[0])
    return running - max(ours, _ours_running())


def _ours_running():
    """This process's threads in the running state (R)."""
    ours = 0
    for task in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{task}/stat", "rb") as f:
            ours += f.read().rsplit(b")", 1)[1].split()[0] == b"R"
    return ours


_LIBRARIES = None


def _openblas():
    """threadpoolctl's controllers of the OpenBLAS libraries, NumPy's and SciPy's (the compiled
    loops' products call SciPy's, loaded here if numba has not yet); none where threadpoolctl
    is not installed. Found once (2.6 ms)."""
    global _LIBRARIES
    if _LIBRARIES is None:
        try:
            import scipy.linalg.cython_blas  # noqa: F401
            from threadpoolctl import ThreadpoolController
        except ImportError:
            return []
        _LIBRARIES = ThreadpoolController().select(internal_api="openblas").lib_controllers
    return _LIBRARIES


class BlasThreads:
    """The BLAS's threads for runs of a compiled loop, chosen at the start of each run.

    Args:
        threads (int or None): A fixed count, or None for as many as the CPUs that other
            processes leave free when a run starts (``others_running``), at most
            ``default_threads()`` and at least 1.

    """

    def __init__(self, threads=None):
        self.fixed, self.most = threads, default_threads()
        self.libraries, self.before = None, []

    def run(self, chunk):
        """``chunk()`` on the chosen threads; returns what it returns."""
        if self.libraries is None:  # at the first run: the loop has loaded its BLAS
            self.libraries = _openblas()
            self.before = [lib.num_threads for lib in self.libraries]
        threads = self.fixed
        if threads is None and self.libraries:
            threads = max(1, self.most - others_running())
        for lib in self.libraries:
            if lib.num_threads != threads:
                lib.set_num_threads(threads)
        return chunk()

    def restore(self):
        """The BLAS's threads as they were before."""
        for lib, threads in zip(self.libraries or [], self.before, strict=True):
            lib.set_num_threads(threads)
