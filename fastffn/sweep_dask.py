"""A sweep's groups trained on the workers of a Dask cluster (``sweep(client=...)``).

Each worker thread takes one chunk of the groups (``train_groups``, which runs
``sweep_groups.train_here`` on that thread alone); a Dask Event tells the tasks
to stop, so that an error or Ctrl-C in the caller stops them within a chunk.
"""

import itertools
import time
import uuid

import numpy as np

from .sweep_groups import train_here

#: Seconds a sweep waits for a worker to join a cluster that has none.
WORKER_WAIT = 30


def check_client(client):
    """Raises unless ``client`` is None or a running Dask client with a worker (waiting
    ``WORKER_WAIT`` seconds for one to join)."""
    if client is None:
        return
    status = getattr(client, "status", None)
    if status is None or not hasattr(client, "submit"):
        raise TypeError(f"client must be a dask.distributed.Client or None, got {client!r}")
    if status != "running":
        raise ValueError(f"client must be a running dask.distributed.Client, got one {status}")
    if not client.nthreads():
        try:
            client.wait_for_workers(1, timeout=WORKER_WAIT)
        except TimeoutError:
            raise TimeoutError(
                f"client: the cluster has no workers, and none joined in {WORKER_WAIT} s"
            ) from None


def train(client, groups, iters, every, progress):
    """``groups`` (a ``sweep_groups.Groups``) in one chunk a worker thread, on the cluster;
    outputs as ``Groups.train``'s, in group order.

    A Dask Event tells the workers to stop: their tasks look at it between chunks
    (``train_groups``), so an error or Ctrl-C here stops them within a chunk,
    where cancelling alone left them computing for seconds.
    """
    from distributed import Event, as_completed

    ops, shapes, coefs, params, XT, YT, draws, lrates = groups.arrays
    threads = sum(client.nthreads().values()) or 1
    bounds = np.linspace(0, groups.G, min(groups.G, threads) + 1).round().astype(int)
    # Once to each worker, not once a task; unhashed, so that a release of an earlier
    # sweep's copy of the same data cannot race with this one.
    data = client.scatter([XT, YT], broadcast=True, hash=False)
    futures, stop = [], Event(f"fastffn-sweep-stop-{uuid.uuid4().hex}", client=client)
    finished = False
    try:
        for a, b in itertools.pairwise(bounds):
            part = draws.part(a * groups.M, b * groups.M)  # the states, not the columns
            chunk = params[a:b], *data, part, lrates[a:b]
            futures.append(
                client.submit(
                    train_groups,
                    ops,
                    shapes,
                    coefs,
                    *chunk,
                    iters,
                    every,
                    stop.name,
                    pure=False,
                )
            )
        chunks = dict(zip([f.key for f in futures], itertools.pairwise(bounds), strict=True))
        for future in as_completed(futures):
            future.result()  # raises a worker's error here
            a, b = chunks[future.key]
            progress(iters * (min(b * groups.M, groups.count) - a * groups.M))
        parts = client.gather(futures)
        finished = True
    finally:  # an error, or Ctrl-C: nothing of this sweep keeps running
        stop.set() if not finished else stop.clear()  # clear: the scheduler forgets it
        client.cancel(futures)
    return tuple(np.concatenate(p) for p in zip(*parts, strict=True))


class Stopped(Exception):
    """A sweep's client stopped it (``train``)."""


def train_groups(ops, shapes, coefs, params, XT, YT, draws, lrates, iters, every, stop):
    """``train_here`` on a Dask worker thread, on that thread alone, until the Event named
    ``stop`` is set (checked between chunks, at most every ``STOP_CHECK`` seconds)."""
    from distributed import Event

    event, checked = Event(stop), [time.perf_counter()]

    def check(steps):
        if time.perf_counter() - checked[0] >= STOP_CHECK:
            checked[0] = time.perf_counter()
            if event.is_set():
                raise Stopped(stop)

    arrays = ops, shapes, coefs, params, XT, YT, draws, lrates
    return train_here(*arrays, iters, every, check, threads=1)


#: Seconds between a Dask task's looks at its stop Event (a call to the scheduler).
STOP_CHECK = 0.25
