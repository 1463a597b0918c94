"""Bad input, numerics at the edges, save/load, threads and an unwritable compile cache."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastffn
from fastffn import NLL, Linear, Sequential, SoftMax, hard
from fastffn.layers import HIDDEN_ACTIVATIONS
from fastffn.packing import compilable
from fastffn.testing import KERNELS

from .test_training import Square, build, weights

X_HARD, Y_HARD = hard()
NAN_X = X_HARD.copy()
NAN_X[0, 3] = np.nan
INF_Y = Y_HARD.copy()
INF_Y[1, 2] = np.inf
TWO_HOT = Y_HARD.copy()
TWO_HOT[:, 4] = 1

# Each row of the README's table of bad inputs: (case, call, exception, message).
BAD_INPUTS = [
    ("X rows != first Linear's inputs", lambda m: m.sgd(X_HARD[:1], Y_HARD), ValueError, "X must have 2 rows"),
    ("Y rows != last layer's outputs", lambda m: m.sgd(X_HARD, Y_HARD[:1]), ValueError, "Y must have 2 rows"),
    ("X and Y columns differ", lambda m: m.sgd(X_HARD, Y_HARD[:, :5]), ValueError, "Y must have 20 columns"),
    ("1-D X", lambda m: m.forward(X_HARD[0]), ValueError, r"X must be 2-D .*reshape\(-1, 1\)"),
    ("3-D X", lambda m: m.forward(X_HARD[None]), ValueError, "X must be 2-D"),
    ("NaN in X", lambda m: m.sgd(NAN_X, Y_HARD), ValueError, "X must be finite"),
    ("inf in Y", lambda m: m.sgd(X_HARD, INF_Y), ValueError, "Y must be finite"),
    ("Y not one-hot", lambda m: m.sgd(X_HARD, TWO_HOT), ValueError, "Y must hold one-hot"),
    ("negative Y", lambda m: m.sgd(X_HARD, -Y_HARD), ValueError, "Y must hold one-hot"),
    ("empty X", lambda m: m.forward(X_HARD[:, :0]), ValueError, "X must not be empty"),
    ("iters < 0", lambda m: m.sgd(X_HARD, Y_HARD, iters=-1), ValueError, "iters must be >= 0"),
    ("iters not an integer", lambda m: m.sgd(X_HARD, Y_HARD, iters=2.5), TypeError, "iters must be an integer"),
    ("lrate NaN", lambda m: m.sgd(X_HARD, Y_HARD, lrate=np.nan), ValueError, "lrate must be finite and > 0"),
    ("lrate inf", lambda m: m.sgd(X_HARD, Y_HARD, lrate=np.inf), ValueError, "lrate must be finite and > 0"),
    ("lrate <= 0", lambda m: m.sgd(X_HARD, Y_HARD, lrate=0), ValueError, "lrate must be finite and > 0"),
    ("lrate not a number", lambda m: m.sgd(X_HARD, Y_HARD, lrate="0.1"), TypeError, "lrate must be a real number"),
    ("batch_size < 1", lambda m: m.sgd(X_HARD, Y_HARD, batch_size=0), ValueError, "batch_size must be >= 1"),
    ("report of another type", lambda m: m.sgd(X_HARD, Y_HARD, report="yes"), TypeError, "report must be"),
    ("rng of another type", lambda m: m.sgd(X_HARD, Y_HARD, rng=42), TypeError, "rng must be a numpy.random.Generator"),
    ("unknown backend", lambda m: setattr(m, "backend", "cuda"), ValueError, "backend must be one of"),
    ("complex X", lambda m: m.forward(X_HARD + 1j), TypeError, "X must hold real numbers"),
    ("object X", lambda m: m.forward(X_HARD.astype(object)), TypeError, "X must hold real numbers"),
    ("strings", lambda m: m.forward([["a", "b"], ["c", "d"]]), TypeError, "X must hold real numbers"),
    ("ragged list", lambda m: m.forward([[1.0, 2.0], [3.0]]), TypeError, "X must be a 2-D array of numbers"),
    ("X so large the network overflows", lambda m: m.forward(np.full((2, 3), 1e308)), ValueError, "X is finite but the network's values overflowed"),
    ("gradient of the wrong shape", lambda m: (m.forward(X_HARD), m.modules[1].backward(np.ones((3, 3)))), ValueError, "dLdA must have 10 rows"),
    ("Linear sizes that do not chain", lambda m: Sequential([Linear(2, 3), Linear(4, 2), SoftMax()], NLL()), ValueError, "sizes must chain"),
    ("modules not a list", lambda m: Sequential(Linear(2, 2), NLL()), TypeError, "modules must be a non-empty list"),
    ("loss not a layer", lambda m: Sequential([Linear(2, 2), SoftMax()], "nll"), TypeError, "loss must be a layer"),
    ("Linear of no inputs", lambda m: Linear(0, 3), ValueError, "m must be >= 1"),
    ("Linear of fractional size", lambda m: Linear(2, 2.5), TypeError, "n must be an integer"),
    ("integer dtype", lambda m: Linear(2, 2, dtype=np.int64), TypeError, "dtype must be float32 or float64"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "call", "error", "message"), BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS]
)
def test_bad_input_gets_a_clear_error(case, call, error, message, backend):
    model = build(fastffn, "ReLU", backend=backend)
    with pytest.raises(error, match=message):
        call(model)


def test_the_docs_list_every_bad_input():
    with open(os.path.join(os.path.dirname(__file__), "..", "docs", "errors.md")) as f:
        readme = f.read()
    for case, *_ in BAD_INPUTS:
        assert f"| {case} |" in readme, case


arrays = st.one_of(
    st.lists(st.floats(allow_nan=True, allow_infinity=True, width=64), min_size=0, max_size=12),
    st.lists(st.integers(-5, 5), min_size=0, max_size=12),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    values=arrays,
    shape=st.sampled_from([(2, 3), (3, 2), (2, 0), (6,), (2, 1, 3), (1, 6), (2, 6)]),
    dtype=st.sampled_from(["float64", "float32", "float16", "int64", "bool", "complex128"]),
    labels=st.lists(st.integers(0, 1), min_size=1, max_size=6),
    iters=st.integers(-2, 5),
    lrate=st.sampled_from([0.005, 0.0, -1.0, np.nan, np.inf, 1e300]),
    backend=st.sampled_from(["numba", "numpy"]),
)
def test_random_input_never_gives_an_unclear_error_or_a_silent_nan(
    values, shape, dtype, labels, iters, lrate, backend
):
    size = int(np.prod(shape))
    X = np.resize(np.asarray(values or [0.0], dtype=np.float64), size).reshape(shape)
    with np.errstate(all="ignore"):
        X = X.astype(dtype)
    y = np.array(labels)
    Y = np.vstack([1 - y, y])
    model = build(fastffn, "Tanh", backend=backend)
    try:
        out = model.forward(X)
        assert np.isfinite(out).all() and out.shape == (2, X.shape[1])
        model.sgd(X, Y, iters=iters, lrate=lrate, report=False)
        assert all(np.isfinite(w).all() for w in weights(model))
    except (ValueError, TypeError, FloatingPointError) as err:
        names = ("X", "Y", "iters", "lrate", "batch_size", "diverged")
        assert any(name in str(err) for name in names), err


# --- numerics -----------------------------------------------------------------


@pytest.mark.parametrize("scale", [1.0, 1000.0])
def test_softmax_of_large_logits_is_finite_and_correct(backend, dtype, scale):
    Z = (np.array([[1.0, -1.0, 0.0], [-1.0, 1.0, 0.0], [0.5, 0.2, -0.3]]) * scale).astype(dtype)
    A = KERNELS["softmax_forward"](backend, Z)
    shifted = Z.astype(np.float64) - Z.max(axis=0)
    expected = np.exp(shifted) / np.exp(shifted).sum(axis=0)
    assert np.isfinite(A).all()
    np.testing.assert_allclose(A, expected, rtol=1e-5, atol=1e-30)


def test_nll_of_a_zero_probability_is_finite(backend, dtype):
    P = np.array([[0.0, 1.0], [1.0, 0.0]], dtype=dtype)
    Y = np.array([[1.0, 1.0], [0.0, 0.0]], dtype=dtype)
    loss = KERNELS["nll_forward"](backend, P, Y)
    grad = KERNELS["nll_backward"](backend, P, Y)
    assert np.isfinite(loss) and loss > 80  # -log(tiny), the largest loss there is
    assert np.isfinite(grad).all()


# --- save and load ----------------------------------------------------------


def trained(backend, dtype):
    model = build(fastffn, "Tanh", (2, 6, 5, 2), backend=backend, dtype=dtype)
    np.random.seed(0)
    model.sgd(X_HARD, Y_HARD, iters=300, report=False)
    return model


def test_save_load_round_trip_is_bit_identical(tmp_path, backend, dtype):
    model = trained(backend, dtype)
    path = tmp_path / "model.npz"
    fastffn.save(model, path)
    loaded = fastffn.load(path)
    assert loaded.backend == backend and loaded.dtype == dtype
    assert [type(m) for m in loaded.modules] == [type(m) for m in model.modules]
    np.testing.assert_array_equal(loaded.forward(X_HARD), model.forward(X_HARD))
    for w, w_saved in zip(weights(loaded), weights(model), strict=True):
        assert w.dtype == w_saved.dtype
        np.testing.assert_array_equal(w, w_saved)
    state = np.random.get_state()[1].copy()
    fastffn.load(path)
    np.testing.assert_array_equal(np.random.get_state()[1], state)  # loading draws nothing


def test_files_never_hold_pickles(tmp_path):
    fastffn.save(trained("numpy", np.float64), tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz", allow_pickle=False) as data:
        assert all(data[key].dtype != object for key in data.files)


def test_a_model_with_a_user_layer_cannot_be_saved(tmp_path):
    model = Sequential([Linear(2, 3), Square(), Linear(3, 2), SoftMax()], NLL())
    with pytest.raises(TypeError, match="cannot save a Square layer"):
        fastffn.save(model, tmp_path / "m.npz")
    assert list(tmp_path.iterdir()) == []


def header_of(path):
    with np.load(path) as data:
        return json.loads(str(data["header"])), {k: data[k] for k in data.files}


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]), "not a readable"),
        (lambda p: p.write_bytes(b"not a zip file at all"), "not a readable"),
        (lambda p: np.savez(p, W0=np.zeros(3)), "not a readable"),
        (lambda p: np.savez(p, header=np.array('{"format": "other"}')), "not a fastffn model"),
        (
            lambda p: np.savez(
                p,
                **{
                    **header_of(p)[1],
                    "header": np.array(json.dumps({**header_of(p)[0], "version": 99})),
                },
            ),
            "format version 99; this fastffn reads versions 1, 2",
        ),
        (lambda p: np.savez(p, **{**header_of(p)[1], "W1": np.zeros((4, 4))}), "inconsistent"),
    ],
    ids=["truncated", "garbage", "no header", "other format", "other version", "wrong shapes"],
)
def test_damaged_files_raise_a_clear_error(tmp_path, damage, message):
    path = tmp_path / "model.npz"
    fastffn.save(trained("numpy", np.float64), path)
    damage(path)
    with pytest.raises(ValueError, match=message):
        fastffn.load(path)


def test_an_interrupted_save_leaves_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "model.npz"
    old = trained("numpy", np.float64)
    fastffn.save(old, path)

    def savez_then_crash(f, **arrays):
        f.write(b"PK\x03\x04 half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", savez_then_crash)
    with pytest.raises(KeyboardInterrupt):
        fastffn.save(trained("numba", np.float32), path)
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == ["model.npz"]
    np.testing.assert_array_equal(fastffn.load(path).forward(X_HARD), old.forward(X_HARD))


def test_a_save_killed_midway_leaves_a_loadable_file(tmp_path):
    path = tmp_path / "model.npz"
    code = f"""
        import numpy as np, fastffn
        from fastffn.sequential import network
        model = network((2, 400, 400, 2), backend="numpy")
        fastffn.save(model, {str(path)!r})
        print("saved", flush=True)
        while True:
            model.modules[0].W += 1
            fastffn.save(model, {str(path)!r})
    """
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], stdout=subprocess.PIPE)
    assert proc.stdout.readline() == b"saved\n"
    time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    model = fastffn.load(path)
    W = model.modules[0].W
    assert np.isfinite(W).all() and W.shape == (2, 400)


# --- threads and the compile cache --------------------------------------------


def test_models_trained_in_threads_match_models_trained_in_turn(backend):
    def train(model, seed):
        model.sgd(X_HARD, Y_HARD, iters=3000, rng=np.random.default_rng(seed), report=False)

    in_turn = [build(fastffn, "ReLU", seed=s, backend=backend) for s in (1, 2)]
    for s, model in zip((1, 2), in_turn, strict=True):
        train(model, s)
    in_threads = [build(fastffn, "ReLU", seed=s, backend=backend) for s in (1, 2)]
    threads = [
        threading.Thread(target=train, args=(m, s)) for s, m in zip((1, 2), in_threads, strict=True)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for a, b in zip(in_turn, in_threads, strict=True):
        for w, w_ref in zip(weights(b), weights(a), strict=True):
            np.testing.assert_array_equal(w, w_ref)


def test_unwritable_cache_directory_still_works():
    """Numba probes each cache directory with a temporary file; make every probe fail,
    as on a read-only install with an unwritable HOME and no NUMBA_CACHE_DIR."""
    code = """
        import os, tempfile
        real = tempfile.TemporaryFile
        def unwritable(*args, dir=None, **kwargs):
            if dir is not None:
                raise PermissionError(13, "Read-only file system", dir)
            return real(*args, **kwargs)
        tempfile.TemporaryFile = unwritable
        os.environ.pop("NUMBA_CACHE_DIR", None)
        os.environ["HOME"] = "/nonexistent"
        import numpy as np, fastffn
        from fastffn.backends import numba as kernels
        from fastffn.sequential import network
        X, Y = fastffn.hard()
        model = network((2, 10, 10, 2), backend="numba")
        model.sgd(X, Y, 500, report=False)
        print(type(kernels.relu_forward._cache).__name__, model.accuracy(X, Y) > 0.5)
    """
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["NullCache", "True"]
    assert "Error" not in result.stderr


@pytest.mark.parametrize("activation", sorted(HIDDEN_ACTIVATIONS))
def test_every_hidden_activation_saves_and_trains_compiled(tmp_path, activation):
    model = build(fastffn, HIDDEN_ACTIVATIONS[activation].__name__, (2, 5, 2), backend="numba")
    assert compilable(model)
    fastffn.save(model, tmp_path / "m.npz")
    loaded = fastffn.load(tmp_path / "m.npz")
    assert [type(m) for m in loaded.modules] == [type(m) for m in model.modules]
    np.testing.assert_array_equal(loaded.forward(X_HARD), model.forward(X_HARD))


def test_a_layer_coefficient_is_saved_and_checked(tmp_path):
    model = Sequential([Linear(2, 5), fastffn.LeakyReLU(0.3), Linear(5, 2), SoftMax()], NLL())
    fastffn.save(model, tmp_path / "m.npz")
    assert fastffn.load(tmp_path / "m.npz").modules[1].slope == 0.3
    with pytest.raises(ValueError, match="slope must be finite and >= 0"):
        fastffn.LeakyReLU(-0.1)
    with pytest.raises(TypeError, match="slope must be a real number"):
        fastffn.LeakyReLU("0.1")


def test_a_fraction_is_a_step_size_like_its_float():
    from fractions import Fraction

    runs = []
    for lrate, eps in ((Fraction(1, 100), Fraction(1, 10**8)), (0.01, 1e-8)):
        model = build(fastffn, "ReLU", (2, 5, 2), seed=1)
        np.random.seed(2)
        model.sgd(X_HARD, Y_HARD, 50, lrate, optimizer=fastffn.Optimizer("adam", eps=eps),
                  report=False)  # fmt: skip
        runs.append(weights(model))
    for a, b in zip(*runs, strict=True):
        np.testing.assert_array_equal(a, b)


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-3, 3)
    | st.floats(-3, 3)
    | st.text(max_size=8)
    | st.sampled_from(["Linear", "ReLU", "LeakyReLU", "NLL", "numba", "float64", "float32"]),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.sampled_from(["type", "m", "n", "dtype", "backend", "slope"]), children, max_size=4
        )
    ),
    max_leaves=6,
)


def _saved_header(tmp_path):
    model = Sequential([Linear(2, 3), fastffn.LeakyReLU(0.2), Linear(3, 2), SoftMax()], NLL())
    fastffn.save(model, tmp_path / "good.npz")
    with np.load(tmp_path / "good.npz") as data:
        return json.loads(str(data["header"])), {k: data[k] for k in data.files if k != "header"}


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(path=st.lists(st.sampled_from(["layers", 0, 1, 2, "loss", "type", "m", "n", "dtype",
                                      "backend", "slope"]), min_size=1, max_size=3),
       value=_JSON)  # fmt: skip
def test_a_corrupt_header_loads_or_is_a_value_error(tmp_path, path, value):
    """Any value anywhere in the header: a model, or ValueError, never another error."""
    header, arrays = _saved_header(tmp_path)
    node = header
    for key in path[:-1]:
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            return  # no such place in this header
    try:
        node[path[-1]] = value
    except (IndexError, TypeError):
        return
    np.savez(tmp_path / "bad.npz", header=np.array(json.dumps(header)), **arrays)
    try:
        model = fastffn.load(tmp_path / "bad.npz")
    except ValueError:
        return
    assert isinstance(model, Sequential)
    model.forward(X_HARD)  # what loaded runs


@pytest.mark.parametrize(
    "change",
    [
        lambda h: h.update(layers="Linear"),
        lambda h: h.update(layers={"type": "Linear"}),
        lambda h: h.update(layers=[2, 3]),
        lambda h: h["layers"][0].update(m=2.0),
        lambda h: h.update(loss=["NLL"]),
        lambda h: h["layers"][1].update(slope="steep"),
        lambda h: h["layers"][1].update(type="NLL"),
    ],
)
def test_each_malformed_header_the_issue_named_is_a_value_error(tmp_path, change):
    header, arrays = _saved_header(tmp_path)
    change(header)
    np.savez(tmp_path / "bad.npz", header=np.array(json.dumps(header)), **arrays)
    with pytest.raises(ValueError, match="inconsistent fastffn model"):
        fastffn.load(tmp_path / "bad.npz")
