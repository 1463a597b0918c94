"""fastffn.sweep on a real Dask cluster: two single-threaded worker processes."""

import numpy as np
import pytest

from fastffn import sweep

from .test_compiled import blobs
from .test_sweep import alone, assert_same, builder

distributed = pytest.importorskip("distributed")  # the test extra installs it


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    )
    with cluster, distributed.Client(cluster) as client:
        yield client


def idle(client):
    return all(not tasks for tasks in client.processing().values())


def test_the_cluster_gives_the_in_process_results(client, dtype):
    X, Y = blobs()
    grid = {"lrate": [0.001, 0.003, 0.01, 0.03, 0.1], "seed": [0, 1, 2], "batch_size": [1, 4]}
    here = sweep(builder(dtype), X, Y, iters=600, every=100, **grid)
    there = sweep(builder(dtype), X, Y, iters=600, every=100, client=client, **grid)
    assert there.configs == here.configs
    for a, b in zip(there.models, here.models, strict=True):
        for m, m_here in zip(a.linear_layers, b.linear_layers, strict=True):
            assert m.W.dtype == dtype
            np.testing.assert_array_equal(m.W, m_here.W)  # the same loop on the same numbers
            np.testing.assert_array_equal(m.W0, m_here.W0)
    assert there.histories == here.histories
    np.testing.assert_array_equal(there.accuracies, here.accuracies)
    assert max(there.accuracies) > 0.8  # they trained
    assert idle(client)


def test_each_model_from_the_cluster_equals_training_it_alone(client, dtype):
    X, Y = blobs()
    build = builder(dtype)
    result = sweep(build, X, Y, iters=500, lrate=[0.003, 0.03], seed=[4, 5], client=client)
    for c, config in enumerate(result.configs):
        assert_same(result, c, alone(build, X, Y, 500, config), dtype)


def test_progress_arrives_as_chunks_finish(client):
    X, Y = blobs()
    seen = []
    sweep(builder(), X, Y, iters=100, lrate=[0.01] * 20, client=client,
          report=lambda done, total: seen.append((done, total)))  # fmt: skip
    assert seen[-1] == (2000, 2000)
    assert len(seen) == 2 and seen[0][0] < seen[1][0]  # one chunk a worker thread


def test_a_closed_client_is_refused():
    cluster = distributed.LocalCluster(n_workers=1, processes=False, dashboard_address=":0")
    with cluster:
        client = distributed.Client(cluster)
        client.close()
        X, Y = blobs()
        with pytest.raises(ValueError, match="client must be a running"):
            sweep(builder(), X, Y, iters=10, lrate=0.01, client=client)


def test_bad_input_submits_nothing(client):
    X, Y = blobs()
    with pytest.raises(ValueError, match="lrate"):
        sweep(builder(), X, Y, iters=10, lrate=[0.01, -1], client=client)
    with pytest.raises(ValueError, match="X"):
        sweep(builder(), X[:1], Y, iters=10, lrate=0.01, client=client)
    assert idle(client)


def test_ctrl_c_stops_the_workers_within_a_second(client):
    """The README's promise: nothing of the sweep keeps running. Running tasks look at a
    stop Event between chunks; cancelling alone left both workers busy for 3-8 s."""
    import _thread
    import threading
    import time

    X, Y = blobs(n=2000)
    timer = threading.Timer(1.5, _thread.interrupt_main)
    timer.start()
    start = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        sweep(builder(), X, Y, iters=10**7, lrate=[0.01] * 16, client=client, every=None)
    assert time.perf_counter() - start < 5
    time.sleep(1.0)  # a chunk and a look at the Event
    before = client.run(time.process_time)
    time.sleep(1.0)
    busy = {w: t - before[w] for w, t in client.run(time.process_time).items()}
    assert all(seconds < 0.3 for seconds in busy.values()), busy
    assert idle(client)


def test_a_sweep_inside_a_dask_task_takes_one_thread(client):
    from fastffn._threads import default_threads

    assert client.submit(default_threads, pure=False).result() == 1


def test_a_cluster_without_workers_times_out_with_a_clear_message(monkeypatch):
    import fastffn.sweep_dask

    monkeypatch.setattr(fastffn.sweep_dask, "WORKER_WAIT", 0.5)
    cluster = distributed.LocalCluster(n_workers=0, processes=False, dashboard_address=":0")
    with cluster, distributed.Client(cluster) as empty:
        X, Y = blobs()
        with pytest.raises(TimeoutError, match="the cluster has no workers, and none joined"):
            sweep(builder(), X, Y, iters=10, lrate=0.01, client=empty)
