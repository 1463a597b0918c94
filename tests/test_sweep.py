"""fastffn.sweep: every model of a grid as training it alone leaves it."""

import itertools
import multiprocessing
import os
import threading
import time
from fractions import Fraction

import numpy as np
import pytest

import fastffn
from fastffn import NLL, Linear, ReLU, Sequential, SoftMax, Tanh, hard
from fastffn.testing import TRAINING_TOLERANCE

from .test_compiled import PlainReLU, blobs, overflowing
from .test_training import weights


def builder(dtype=np.float64, hidden=ReLU, widths=(3, 7, 5, 3)):
    def build():
        modules = []
        for m, n in itertools.pairwise(widths):
            modules += [Linear(m, n), hidden()]
        model = Sequential([*modules[:-1], SoftMax()], NLL())
        for layer in model.linear_layers:
            layer.W = layer.W.astype(dtype)
        return model

    return build


def alone(build, X, Y, iters, config, every=250):
    """What the sweep promises for one configuration: sgd on a model built alone."""
    if config["seed"] is not None:
        np.random.seed(config["seed"])
    model = build()
    try:
        history = model.sgd(
            X, Y, iters, config["lrate"], batch_size=config["batch_size"], report=False,
            every=every, accuracy=True,
        )  # fmt: skip
        stopped = None
    except FloatingPointError as error:
        history, stopped = error.history, error.iteration
    return model, history, stopped


def assert_same(result, c, expected, dtype=np.float64):
    model, history, stopped = expected
    tolerance = TRAINING_TOLERANCE[np.dtype(dtype)]
    for w, w_alone in zip(weights(result.models[c]), weights(model), strict=True):
        assert w.dtype == dtype
        np.testing.assert_allclose(w, w_alone, **tolerance)
    assert result.stopped[c] == stopped
    assert [h[0] for h in result.histories[c]] == [h[0] for h in history]
    for (_, loss, acc), (_, loss_alone, acc_alone) in zip(
        result.histories[c], history, strict=True
    ):
        assert acc == acc_alone
        assert loss == pytest.approx(loss_alone, rel=tolerance["rtol"] * 100, abs=tolerance["atol"])


@pytest.fixture(params=["lanes", "each"])
def loop(request, monkeypatch):
    """Models side by side in SIMD lanes, or each in the loop sgd takes for it (one sample
    or a batch a step) on the threads, as wide layers take them (``sweep_groups.wide``)."""
    monkeypatch.setattr(fastffn.sweep_groups, "WIDE_FLOPS", float("inf") if request.param == "lanes"
                        else 0)  # fmt: skip
    return request.param


@pytest.mark.parametrize("batch_size", [1, [1, 4]])
def test_every_model_equals_training_it_alone(batch_size, dtype, loop):
    X, Y = blobs()
    build = builder(dtype)
    lrates, seeds, iters = [0.003, 0.01, 0.03], [0, 5, 7], 600
    result = fastffn.sweep(
        build, X, Y, iters=iters, lrate=lrates, seed=seeds, batch_size=batch_size, every=100
    )
    sizes = batch_size if isinstance(batch_size, list) else [batch_size]
    assert len(result) == len(lrates) * len(seeds) * len(sizes)
    for c, config in enumerate(result.configs):  # the product, the last axis fastest
        lrate, rest = divmod(c, len(seeds) * len(sizes))
        seed, size = divmod(rest, len(sizes))
        assert config == {"lrate": lrates[lrate], "seed": seeds[seed], "batch_size": sizes[size]}
        assert_same(result, c, alone(build, X, Y, iters, config, every=100), dtype)


def test_the_lane_arithmetic_takes_every_lane():
    """``_lanes`` is written out lane by lane: where LANES differs, some lanes do not train."""
    from fastffn.backends import LANES, _lanes

    V = np.arange(2.0 * LANES).reshape(2, LANES)
    t = _lanes.row(V, 1)
    assert _lanes.add(t, t) == tuple(2 * V[1])


def test_tanh_and_seed_none_draw_from_the_global_state_in_turn():
    X, Y = blobs()
    build = builder(hidden=Tanh)
    np.random.seed(3)
    result = fastffn.sweep(build, X, Y, iters=300, lrate=[0.01, 0.02, 0.05])
    after = np.random.randint(1 << 30)
    np.random.seed(3)
    for c, config in enumerate(result.configs):
        assert config["seed"] is None
        assert_same(result, c, alone(build, X, Y, 300, config))
    assert np.random.randint(1 << 30) == after  # the state left as one run after another


def test_models_of_one_seed_share_their_draws_and_leave_the_state_as_in_turn():
    X, Y = blobs()
    build = builder()
    result = fastffn.sweep(build, X, Y, iters=200, lrate=[0.01, 0.02, 0.05], seed=4)
    after = np.random.get_state()
    for c, config in enumerate(result.configs):
        assert_same(result, c, alone(build, X, Y, 200, config))
    expected = np.random.get_state()  # key, position and the cached Gaussian of randn
    assert np.array_equal(after[1], expected[1]) and after[2:] == expected[2:]


@pytest.mark.parametrize("every", [1, None])  # stopped by its outputs, or by its gradients
def test_a_diverging_model_stops_alone_and_the_others_go_on(every):
    X, Y = hard()
    build = builder(widths=(2, 10, 10, 2))
    result = fastffn.sweep(build, X, Y, iters=500, lrate=[0.005, 1e200], seed=1, every=every)
    assert result.stopped[0] is None and result.stopped[1] is not None
    for c, config in enumerate(result.configs):
        assert_same(result, c, alone(build, X, Y, 500, config, every=every))
    assert np.isnan(result.accuracies[1]) and "stopped at" in result.table()


@pytest.mark.parametrize("every", [3, None])
def test_in_either_loop_a_diverging_model_stops_alone_at_any_batch_size(every, loop):
    X, Y = hard()
    build = builder(widths=(2, 10, 10, 2))
    result = fastffn.sweep(build, X, Y, iters=300, lrate=[0.005, 1e200, 0.01], seed=[1, 2],
                           batch_size=4, every=every)  # fmt: skip
    assert [s is None for s in result.stopped] == [True, True, False, False, True, True]
    for c, config in enumerate(result.configs):
        assert_same(result, c, alone(build, X, Y, 300, config, every=every))


def test_wide_layers_take_the_batch_loop_and_narrow_ones_the_lanes():
    from fastffn.packing import pack
    from fastffn.sweep_groups import wide

    shapes = lambda widths: pack(builder(widths=widths)()).shapes  # noqa: E731
    # docs/performance.md's table: the faster path at each measured point
    assert wide(shapes((64, 128, 128, 10)), 8) and wide(shapes((16, 32, 32, 4)), 16)
    assert not wide(shapes((16, 32, 32, 4)), 8)  # lanes 3.45x one after another, each 1.59x
    assert not wide(shapes((64, 64, 64, 10)), 4)  # lanes 2.39x, each 1.75x
    assert wide(shapes((64, 64, 64, 10)), 16)  # lanes 0.77x, each 1.85x
    assert wide(shapes((64, 128, 128, 10)), 1)  # the one-sample loop: lanes 1.43x, each 1.71x
    assert not wide(shapes((32, 64, 64, 10)), 1) and not wide(shapes((2, 10, 10, 2)), 64)


def test_a_gradient_that_overflows_under_finite_outputs_stops_its_model():
    _, X, Y = overflowing()
    build = lambda: overflowing()[0]  # noqa: E731  (seeded inside)
    result = fastffn.sweep(build, X, Y, iters=20, lrate=[0.01, 0.02], every=None)
    assert None not in result.stopped
    for c, config in enumerate(result.configs):
        assert_same(result, c, alone(build, X, Y, 20, config, every=None))


def test_models_the_loop_cannot_run_train_one_after_another_with_the_same_results():
    X, Y = hard()

    def build():
        return Sequential([Linear(2, 6), PlainReLU(), Linear(6, 2), SoftMax()], NLL())

    result = fastffn.sweep(build, X, Y, iters=300, lrate=[0.01, 0.02], seed=[0, 1])
    for c, config in enumerate(result.configs):
        assert_same(result, c, alone(build, X, Y, 300, config))


def test_accuracies_are_measured_when_first_read(loop, monkeypatch):
    X, Y = hard()
    measured = []
    accuracy = Sequential.accuracy
    monkeypatch.setattr(Sequential, "accuracy", lambda m, *a: measured.append(m) or accuracy(m, *a))
    result = fastffn.sweep(builder(widths=(2, 10, 2)), X, Y, iters=50, lrate=[0.01, 1e9], seed=0)
    assert measured == []  # training paid for none
    assert result.stopped[1] is not None and np.isnan(result.accuracies[1])
    assert result.accuracies[0] == accuracy(result.models[0], X, Y)
    assert measured == result.models[:1]
    assert result.accuracies is result.accuracies  # measured once


def test_the_table_and_the_best_model():
    X, Y = hard()
    result = fastffn.sweep(builder(widths=(2, 10, 2)), X, Y, iters=2000, lrate=[1e-5, 0.01], seed=0)
    assert result.accuracies[1] > result.accuracies[0]
    assert result.best() == 1
    lines = result.table(best_first=True).splitlines()
    assert "lrate" in lines[0] and lines[1].split()[0] == "0.01" and len(lines) == 3
    assert str(result) == result.table()


def test_progress_is_reported():
    X, Y = hard()
    calls = []
    fastffn.sweep(
        builder(widths=(2, 4, 2)), X, Y, iters=50, lrate=[0.01, 0.02],
        report=lambda done, total: calls.append((done, total)),
    )  # fmt: skip
    assert calls and calls[-1] == (100, 100)


def test_sweeps_from_two_threads_at_once_give_the_results_of_one():
    X, Y = hard()
    build = builder(widths=(2, 10, 10, 2))
    kwargs = {"iters": 2000, "lrate": [0.005, 0.01, 0.02], "seed": [0, 1, 2, 3]}
    expected = fastffn.sweep(build, X, Y, **kwargs)
    results = [None, None]

    def run(i):
        results[i] = fastffn.sweep(build, X, Y, **kwargs)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for result in results:
        for a, b in zip(result.models, expected.models, strict=True):
            for w, w_expected in zip(weights(a), weights(b), strict=True):
                np.testing.assert_array_equal(w, w_expected)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_forked_child_sweeps_on_threads_of_its_own():
    X, Y = hard()
    kwargs = {"iters": 200, "lrate": [0.005, 0.01], "seed": list(range(8))}  # two groups
    expected = fastffn.sweep(builder(widths=(2, 10, 10, 2)), X, Y, **kwargs)  # the pool exists
    context = multiprocessing.get_context("fork")
    with context.Pool(1) as pool:  # the parent's pool threads do not exist in the child
        models = pool.apply_async(_sweep_in_child, (X, Y, kwargs)).get(timeout=120)
    for a, b in zip(models, expected.models, strict=True):
        for w, w_expected in zip(weights(a), weights(b), strict=True):
            np.testing.assert_array_equal(w, w_expected)


def _sweep_in_child(X, Y, kwargs):
    return fastffn.sweep(builder(widths=(2, 10, 10, 2)), X, Y, **kwargs).models


def test_an_error_in_a_group_is_raised_after_every_group_is_done():
    from fastffn.sweep_groups import each_group

    done = []

    def work(g):  # group 0 on this thread, which then stops; the pool's thread takes the rest
        if g == 0:
            raise RuntimeError("group 0")
        time.sleep(0.05)
        done.append(g)

    with pytest.raises(RuntimeError, match="group 0"):
        each_group(work, 4, threads=2)
    assert sorted(done) == [1, 2, 3]  # raised once the other thread's groups were done


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"lrate": []}, ValueError, "lrate must be a value or a non-empty list"),
        ({"lrate": [0.1, 0.0]}, ValueError, "lrate"),
        ({"lrate": -1.0}, ValueError, "lrate"),
        ({"lrate": 0.1, "seed": [-1]}, ValueError, "seed"),
        ({"lrate": 0.1, "batch_size": [1, 0]}, ValueError, "batch_size"),
        ({"lrate": 0.1, "iters": -1}, ValueError, "iters"),
        ({"lrate": 0.1, "build": lambda: "model"}, TypeError, "build must return a Sequential"),
        ({"lrate": 0.1, "build": 3}, TypeError, "build must be a callable"),
        ({"lrate": 0.1, "client": object()}, TypeError, "client must be"),
        ({"lrate": 0.1, "report": "yes"}, TypeError, "report must be"),
    ],
)
def test_bad_arguments_are_named(kwargs, error, words):
    X, Y = hard()
    arguments = {"build": builder(widths=(2, 4, 2)), "iters": 10, **kwargs}
    build = arguments.pop("build")
    with pytest.raises(error, match=words):
        fastffn.sweep(build, X, Y, **arguments)


def test_models_of_different_architectures_are_refused():
    X, Y = hard()
    widths = iter([4, 5])

    def build():
        width = next(widths)
        return Sequential([Linear(2, width), ReLU(), Linear(width, 2), SoftMax()], NLL())

    with pytest.raises(ValueError, match="one architecture"):
        fastffn.sweep(build, X, Y, iters=10, lrate=[0.1, 0.2])


def test_data_that_do_not_fit_the_model_are_refused():
    X, Y = blobs()
    with pytest.raises(ValueError, match="X"):
        fastffn.sweep(builder(widths=(2, 4, 3)), X, Y, iters=10, lrate=0.1)


def test_scalars_as_0d_arrays_and_fractions_are_taken_as_sgd_takes_them():
    X, Y = hard()
    build = builder(widths=(2, 4, 2))
    as_arrays = fastffn.sweep(build, X, Y, iters=20, lrate=np.array(0.05), seed=np.array(3),
                              batch_size=np.array(2), every=None)  # fmt: skip
    as_numbers = fastffn.sweep(build, X, Y, iters=20, lrate=Fraction(1, 20), seed=3,
                               batch_size=2, every=None)  # fmt: skip
    assert as_arrays.configs == as_numbers.configs == [{"lrate": 0.05, "seed": 3, "batch_size": 2}]
    np.testing.assert_array_equal(
        as_arrays.models[0].modules[0].W, as_numbers.models[0].modules[0].W
    )


def test_seeds_out_of_numpys_range_and_huge_grids_are_refused_up_front():
    X, Y = hard()
    with pytest.raises(ValueError, match="seed must be between 0 and 4294967295, got 4294967296"):
        fastffn.sweep(builder(widths=(2, 4, 2)), X, Y, iters=1, lrate=0.1, seed=2**32)
    with pytest.raises(ValueError, match=r"the grid holds 1000000000000 models \(1 lrate x"):
        fastffn.sweep(builder(widths=(2, 4, 2)), X, Y, iters=1, lrate=0.1, seed=range(10**12))


class FirstChunk(Exception):
    pass


def test_memory_is_bounded_whatever_the_iterations():
    """A sweep draws its columns block by block, as sgd does: 10**11 steps start at once (they
    were drawn whole up front: 745 GiB), and what a Dask task carries is the states."""
    import pickle
    import tracemalloc

    from fastffn.sweep_draws import Draws, stream_state

    X, Y = hard()

    def stop(done, total):
        assert total == 4 * 10**11
        raise FirstChunk

    tracemalloc.start()
    try:
        with pytest.raises(FirstChunk):
            fastffn.sweep(builder(widths=(2, 4, 2)), X, Y, iters=10**11, lrate=[0.1, 0.2],
                          seed=[0, 1], batch_size=8, report=stop)  # fmt: skip
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 << 20, peak
    np.random.seed(0)
    draws = Draws([stream_state()] * 32, X.shape[1], 8)
    assert len(pickle.dumps(draws)) < 100_000


def test_draws_in_blocks_are_the_columns_sgd_draws():
    from fastffn.sweep_draws import Draws, stream_state

    np.random.seed(5)
    draws = Draws([stream_state()], 100, 3)
    blocks = np.concatenate([draws.take(k, 1, 2)[0, ..., 0] for k in (1, 7, 50)])
    np.random.seed(5)
    np.testing.assert_array_equal(blocks, np.random.randint(100, size=(58, 3)))


def test_a_build_returning_one_model_again_is_refused():
    X, Y = hard()
    model = builder(widths=(2, 4, 2))()
    with pytest.raises(ValueError, match="build must return a new model each call"):
        fastffn.sweep(lambda: model, X, Y, iters=10, lrate=[0.1, 0.2])
    layers = model.modules  # new Sequentials around the same layers share their weights
    with pytest.raises(ValueError, match="build must return a new model each call"):
        fastffn.sweep(lambda: Sequential(layers, NLL()), X, Y, iters=10, lrate=[0.1, 0.2])


def test_report_true_is_one_line_redrawn_in_place(capsys):
    X, Y = hard()
    fastffn.sweep(builder(widths=(2, 4, 2)), X, Y, iters=3000, lrate=[0.01] * 4, report=True)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.endswith("\n")  # one line, ended once
    assert err.count("\r") >= 1 and "12000/12000 steps" in err.splitlines()[-1].split("\r")[-1]


def test_report_true_on_a_terminal_is_tqdms_bar(monkeypatch):
    import tqdm.auto

    from fastffn import progress

    made = []
    monkeypatch.setattr(progress.sys.stderr, "isatty", lambda: True, raising=False)
    monkeypatch.setattr(tqdm.auto, "tqdm", lambda **kw: made.append(kw) or tqdm.tqdm(**kw))
    X, Y = hard()
    fastffn.sweep(builder(widths=(2, 4, 2)), X, Y, iters=50, lrate=[0.01, 0.02], report=True)
    assert made and made[0]["total"] == 100


def test_held_out_data_rank_the_models_and_the_frame_holds_the_grid():
    X, Y = hard()
    X_train, Y_train, X_val, Y_val = fastffn.datasets.split(X, Y, 0.3, seed=1)
    result = fastffn.sweep(builder(widths=(2, 10, 2)), X_train, Y_train, iters=2000,
                           lrate=[1e-5, 0.01, 1e-4], seed=0, X_val=X_val, Y_val=Y_val)  # fmt: skip
    for c, model in enumerate(result.models):
        assert result.val_accuracies[c] == model.accuracy(X_val, Y_val)
        mean_loss = model.loss.forward(model.forward(X_val), Y_val) / X_val.shape[1]
        assert result.val_losses[c] == pytest.approx(mean_loss, rel=1e-12)
    assert result.best() == int(np.argmax(result.val_accuracies)) == 1
    assert result.table(best_first=True).splitlines()[1].split()[0] == "0.01"
    assert "val acc" in result.table()
    frame = result.to_frame()
    assert list(frame.columns) == ["lrate", "seed", "batch_size", "loss", "accuracy", "stopped",
                                   "val_accuracy", "val_loss"]  # fmt: skip
    assert frame["lrate"].tolist() == [1e-5, 0.01, 1e-4] and frame["stopped"].isna().all()
    assert frame["val_accuracy"].tolist() == result.val_accuracies
    with pytest.raises(ValueError, match="X_val"):
        fastffn.sweep(builder(widths=(2, 10, 2)), X, Y, iters=1, lrate=0.01, X_val=X_val[:1],
                      Y_val=Y_val)  # fmt: skip
    with pytest.raises(ValueError, match="together"):
        fastffn.sweep(builder(widths=(2, 10, 2)), X, Y, iters=1, lrate=0.01, X_val=X_val)


def test_held_out_ranking_breaks_ties_by_loss():
    configs = [{"lrate": r, "seed": 0, "batch_size": 1} for r in (1, 2)]
    result = fastffn.sweeps.SweepResult(configs, None, None)
    for c in range(2):
        result.set(c, None, [(1, 0.5, 0.5)], None)
    result.val_accuracies, result.val_losses = [0.9, 0.9], [0.4, 0.2]
    assert result.best() == 1


def test_the_loss_panel_marks_each_curves_last_record_even_a_lone_one():
    import matplotlib

    matplotlib.use("Agg")
    from fastffn.plot import sweep_figure

    X, Y = hard()
    result = fastffn.sweep(builder(widths=(2, 4, 2)), X, Y, iters=100, every=250, lrate=[0.01])
    assert [len(h) for h in result.histories] == [1]  # --every >= --iters: one record
    curve = sweep_figure(result).axes[0].lines[0]
    assert len(curve.get_xdata()) == 1 and curve.get_marker() == "o"


def test_threads_change_nothing_but_the_speed_and_default_to_the_cpus_we_may_use(monkeypatch):
    X, Y = hard()
    runs = [fastffn.sweep(builder(widths=(2, 4, 2)), X, Y, iters=300, lrate=[0.01] * 20,
                          seed=range(20), threads=t) for t in (1, 2, 5)]  # fmt: skip
    for other in runs[1:]:
        for a, b in zip(runs[0].models, other.models, strict=True):
            for wa, wb in zip(weights(a), weights(b), strict=True):
                np.testing.assert_array_equal(wa, wb)
    with pytest.raises(ValueError, match="threads must be >= 1"):
        fastffn.sweep(builder(), X, Y, iters=1, lrate=0.01, threads=0)
    from fastffn._threads import default_threads

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3, 5, 7}, raising=False)
    assert default_threads() == 3  # the CPUs this process may use, not os.cpu_count()
    monkeypatch.setenv("OMP_NUM_THREADS", "2")  # as joblib's workers have it
    assert default_threads() == 2


def test_groups_are_a_queue_a_slow_thread_takes_fewer_from(monkeypatch):
    from fastffn.sweep_groups import each_group

    taken = {}

    def work(g):
        name = threading.current_thread().name
        taken.setdefault(name, []).append(g)
        time.sleep(0.2 if name == threading.main_thread().name else 0.01)  # a busy core

    each_group(work, 12, 2)
    assert sorted(g for gs in taken.values() for g in gs) == list(range(12))
    assert len(taken[threading.main_thread().name]) <= 2  # the even split gave it 6
