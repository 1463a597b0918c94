"""The command line, run as a user runs it: in a subprocess."""

import os
import subprocess
import sys
from importlib.metadata import entry_points

import numpy as np
import pytest

import fastffn
from fastffn import cli, datasets


def fastffn_cli(*args, code=None):
    """Runs ``python -m fastffn ARGS`` (or ``code``); returns (exit code, stdout, stderr)."""
    command = (
        [sys.executable, "-c", code, *args] if code else [sys.executable, "-m", "fastffn", *args]
    )
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    return result.returncode, result.stdout, result.stderr


def test_the_console_script_is_declared():
    (script,) = [e for e in entry_points(group="console_scripts") if e.name == "fastffn"]
    assert script.value == "fastffn.cli:main"


def test_train_with_no_options_is_the_notebooks_job_and_reaches_100_percent():
    code, out, err = fastffn_cli("train")
    assert code == 0, err
    lines = out.splitlines()
    reports = [line for line in lines if line.startswith("Iteration = ")]
    assert [int(line.split()[2]) for line in reports] == list(range(1, 100_000, 250))
    assert lines[-2] == (
        "Final training accuracy = 100.00% on hard (2-10-10-2 relu, 100000 iterations, batch 1)"
    )
    assert lines[-1].startswith("Training took ") and lines[-1].endswith(
        "on the numba backend (float64)"
    )


def test_train_options_save_and_plot(tmp_path):
    model_path, png = tmp_path / "m.npz", tmp_path / "out.png"
    code, out, err = fastffn_cli(
        "train", "--dataset", "blobs", "--samples", "300", "--classes", "4", "--layers", "16",
        "--activation", "sigmoid", "--iters", "3000", "--lrate", "0.01", "--batch-size", "8",
        "--seed", "3", "--backend", "numpy", "--dtype", "float32", "--quiet",
        "--save", str(model_path), "--plot", str(png),
    )  # fmt: skip
    assert code == 0, err
    assert "Iteration" not in out
    assert "on blobs (2-16-4 sigmoid, 3000 iterations, batch 8)" in out
    assert "on the numpy backend (float32)" in out
    model = fastffn.load(model_path)
    assert model.backend == "numpy" and model.dtype == np.float32
    X, Y = datasets.blobs(300, 2, 4, seed=3)
    assert model.accuracy(X, Y) > 0.8
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_plot_of_data_that_is_not_2d_draws_only_the_curve(tmp_path):
    png = tmp_path / "curve.png"
    code, _, err = fastffn_cli(
        "train",
        "--dataset",
        "blobs",
        "--features",
        "5",
        "--iters",
        "600",
        "--quiet",
        "--plot",
        str(png),
    )
    assert code == 0, err
    assert png.stat().st_size > 5_000


@pytest.mark.parametrize("command", [[], ["train"], ["sweep"]])
def test_help_explains_every_option(command):
    code, out, _ = fastffn_cli(*command, "--help")
    assert code == 0
    options = {
        (): ["train", "sweep", "warmup", "--version"],
        ("sweep",): ["--dataset", "--layers", "--lrate", "--seeds", "--batch-size", "--iters",
                     "--workers", "--scheduler", "--plot"],
        ("train",): ["--dataset", "--layers", "--activation", "--iters", "--lrate", "--batch-size",
                     "--seed", "--backend", "--dtype", "--save", "--plot", "--quiet"],
    }[tuple(command)]  # fmt: skip
    for option in options:
        assert option in out


@pytest.mark.parametrize(
    ("args", "exit_code", "message"),
    [
        (["train", "--layers", "ten"], 2, "--layers: needs widths like 10,10"),
        (["train", "--backend", "cuda"], 2, "invalid choice: 'cuda'"),
        (["train", "--iters", "many"], 2, "--iters: invalid int value"),
        (["train", "--batch-size", "0"], 2, "--batch-size: needs an integer >= 1"),
        (["train", "--lrate", "-1"], 1, "lrate must be finite and > 0"),
        (["train", "--iters", "-5"], 1, "iters must be >= 0"),
        (["train", "--save", "/no/such/dir/m.npz"], 1, "the folder /no/such/dir does not exist"),
        (["train", "--plot", "/no/such/p.png"], 1, "the folder /no/such does not exist"),
        (["train", "--save", ""], 1, "--save needs a file name, got ''"),
        (["train", "--save", "/"], 1, "--save /: is a folder"),
        (["sweep", "--lrate", "0.1,-1"], 1, "lrate must be finite and > 0, got -1.0"),
        (["sweep", "--lrate", "fast"], 2, "--lrate: needs floats like 1,2,3, got 'fast'"),
        (["sweep", "--seeds", "5-2"], 2, "--seeds: needs seeds from 0 to 4294967295 like 0-15"),
        (["train", "--seed", "-1"], 2, "--seed: needs a seed from 0 to 4294967295, got '-1'"),
        (["sweep", "--seeds", "4294967296"], 2, "--seeds: needs seeds from 0 to 4294967295"),
        (["sweep", "--data-seed", "-1"], 2, "--data-seed: needs a seed from 0 to 4294967295"),
        (["sweep", "--seeds", "0-99999999"], 2, "'0-99999999' is 100000000 seeds; a sweep"),
        (
            ["sweep", "--seeds", "0-99999", "--lrate", "0.1,0.2", "--iters", "1"],
            1,
            "the grid holds 200000 models (2 lrate x 100000 seed x 1 batch_size)",
        ),
        (["sweep", "--batch-size", "0"], 1, "batch_size must be >= 1"),
        (["sweep", "--workers", "2", "--scheduler", "x"], 2, "not allowed with argument"),
        (["sweep", "--workers", "0"], 2, "--workers: needs an integer >= 1"),
        (["sweep", "--plot", "/no/such/p.png"], 1, "the folder /no/such does not exist"),
        (["sweep", "--scheduler", "tcp://127.0.0.1:1", "--iters", "1"], 1, "cannot connect"),
        (
            ["train", "--dataset", "xor", "--test-size", "0.9"],
            1,
            "test_size must leave a sample on each side of the split of 4, got 0.9",
        ),
        (["warmup", "--kinds", "sgd,jax"], 2, "--kinds: needs kinds among sgd,optimizers"),
        (["fly"], 2, "invalid choice: 'fly'"),
        ([], 2, "the following arguments are required: command"),
    ],
)
def test_bad_options_give_one_line_and_a_nonzero_exit(args, exit_code, message):
    code, _, err = fastffn_cli(*args)
    assert code == exit_code
    assert len(err.strip().splitlines()) == 1 and message in err, err
    assert "Traceback" not in err


def test_plot_without_matplotlib_says_how_to_get_it(tmp_path):
    code = "import sys\nsys.modules['matplotlib'] = None  # import fails\nimport fastffn.cli\n"
    code += "sys.exit(fastffn.cli.main())"
    exit_code, out, err = fastffn_cli("train", "--plot", str(tmp_path / "x.png"), code=code)
    assert exit_code == 1 and out == ""
    assert err.strip() == (
        "fastffn: error: plotting needs matplotlib, an optional extra: pip install 'fastffn[plot]'"
    )


def test_generated_datasets_have_the_notebooks_layout():
    for X, Y, d, classes in [
        (*datasets.blobs(50, 3, 4, seed=1), 3, 4),
        (*datasets.spirals(40, 5), 2, 5),
    ]:
        assert X.shape[0] == d and Y.shape == (classes, X.shape[1])
        np.testing.assert_array_equal(Y.sum(axis=0), 1)
    np.testing.assert_array_equal(datasets.blobs(seed=7)[0], datasets.blobs(seed=7)[0])


@pytest.mark.parametrize(
    "args",
    [
        ["--dataset", "blobs", "--samples", "1000000000000"],
        ["--layers", "10000000,10000000"],
    ],
)
def test_what_does_not_fit_in_memory_is_one_line(args):
    code, _, err = fastffn_cli("train", *args)
    assert code == 1
    assert err.startswith("fastffn: error: the data or the model do not fit in memory")
    assert len(err.strip().splitlines()) == 1, err


def test_a_closed_pipe_ends_quietly():
    result = subprocess.run(
        f"{sys.executable} -m fastffn train | head -2",
        shell=True,
        capture_output=True,
        text=True,
        check=False,
    )
    assert len(result.stdout.splitlines()) == 2
    assert result.stderr == ""


def test_the_progress_line_ends_at_100_percent_on_a_line_of_its_own(capsys):
    progress = cli.Progress(1000, quiet=True)
    progress.line.start -= 3  # a run past the two seconds that show the line
    progress(500, 0.5, 0.1)
    progress.close(finished=True)
    err = capsys.readouterr().err
    assert err.endswith("\n") and err.rstrip("\n").split("\r")[-1].startswith("[" + "#" * 30)
    assert " 100% 1000/1000 iterations" in err
    progress = cli.Progress(1000, quiet=True)
    progress.line.start -= 3
    progress(500, 0.5, 0.1)
    progress.close(finished=False)  # interrupted: what follows starts a line
    err = capsys.readouterr().err
    assert err.endswith("\n") and "100%" not in err


def test_sweep_prints_the_grid_best_first_and_draws_its_plot(tmp_path):
    png = tmp_path / "sweep.png"
    code, out, err = fastffn_cli(
        "sweep", "--lrate", "0.001,0.01,0.03", "--seeds", "0-1,5", "--iters", "1500",
        "--plot", str(png),
    )  # fmt: skip
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["lrate", "seed", "batch", "loss", "accuracy"]
    rows = [line.split() for line in lines[1:10]]
    assert sorted((float(r[0]), int(r[1])) for r in rows) == [
        (lr, s) for lr in (0.001, 0.01, 0.03) for s in (0, 1, 5)
    ]
    accuracies = [float(r[-1]) for r in rows]
    assert accuracies == sorted(accuracies, reverse=True) and accuracies[0] > 0.8
    assert lines[10].startswith("9 models of 2-10-10-2 relu on hard, 1500 iterations each")
    assert lines[11] == f"Saved the pictures to {png}"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "100% 13500/13500 model-iterations" in err  # progress on stderr


def test_sweep_with_a_test_size_ranks_by_the_held_out_accuracy():
    code, out, err = fastffn_cli(
        "sweep", "--dataset", "blobs", "--lrate", "0.00001,0.03", "--seeds", "0", "--iters", "3000",
        "--test-size", "0.3",
    )  # fmt: skip
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["lrate", "seed", "batch", "loss", "accuracy", "val", "loss",
                                "val", "acc"]  # fmt: skip
    held_out = [float(line.split()[-1]) for line in lines[1:3]]
    assert held_out == sorted(held_out, reverse=True) and float(lines[1].split()[0]) == 0.03


def test_sweep_on_local_workers_prints_what_it_prints_here():
    args = ("sweep", "--lrate", "0.003,0.03", "--seeds", "0-2", "--iters", "800")
    code, here, err = fastffn_cli(*args)
    assert code == 0, err
    code, there, err = fastffn_cli(*args, "--workers", "2")
    assert code == 0, err
    assert here.splitlines()[:-1] == there.splitlines()[:-1]  # all but the time and the place
    assert there.splitlines()[-1].endswith("on a local Dask cluster")


def test_train_on_digits_reports_held_out_accuracy():
    code, out, err = fastffn_cli(
        "train", "--dataset", "digits", "--layers", "64", "--batch-size", "32", "--lrate", "0.003",
        "--iters", "900", "--test-size", "0.25", "--quiet",
    )  # fmt: skip
    assert code == 0, err
    lines = out.splitlines()
    assert (
        lines[0].startswith("Final training accuracy = ") and "on digits (64-64-10 relu" in lines[0]
    )
    assert lines[1].startswith("Held-out accuracy = ") and lines[1].endswith("% on 449 samples")
    assert float(lines[1].split()[3].rstrip("%")) > 90


def test_digits_have_the_notebooks_layout():
    X, Y = datasets.digits()
    assert X.shape == (64, 1797) and Y.shape == (10, 1797)
    assert X.min() == 0 and X.max() == 1 and (Y.sum(axis=0) == 1).all()
    X_train, Y_train, X_test, Y_test = datasets.split(X, Y, 0.25, seed=3)
    assert X_train.shape == (64, 1348) and X_test.shape == (64, 449)
    assert Y_train.shape == (10, 1348) and Y_test.shape == (10, 449)
    both = np.hstack([X_train, X_test])
    assert sorted(map(tuple, both.T)) == sorted(map(tuple, X.T))  # a partition of the samples


def test_version_says_whether_the_loop_built_at_install_runs(capsys, monkeypatch):
    from fastffn.backends import aot

    with pytest.raises(SystemExit) as exit:
        cli.main(["--version"])
    assert exit.value.code == 0
    line = capsys.readouterr().out
    assert line.startswith(f"fastffn {fastffn.__version__} (numba ")
    assert ("in use" if aot.extension() else "jitted at first use") in line
    monkeypatch.setattr(aot, "stamp", lambda: 0)  # as after an upgrade of numba
    aot.extension.cache_clear()
    try:
        assert "stale" in aot.status()
    finally:
        monkeypatch.undo()
        aot.extension.cache_clear()


def test_warmup_fills_the_cache_that_a_later_process_loads(tmp_path):
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "fastffn", "warmup", "--kinds", "kernels"],
                          capture_output=True, text=True, env=env, check=True)  # fmt: skip
    assert done.stdout.startswith("compiled for kernels in ")
    code = (
        "import numpy as np\n"
        "from fastffn import functional as F\n"
        "from fastffn.backends import numba as K\n"
        "Z = F.linear(np.ones((3, 2)), np.ones((3, 4)), np.zeros((4, 1)), backend='numba')\n"
        "F.leaky_relu_backward(F.leaky_relu(Z), Z, backend='numba')\n"
        "kernels = (K._linear_forward, K.leaky_relu_forward, K.leaky_relu_backward)\n"
        "print(sum(sum(k.stats.cache_hits.values()) for k in kernels),\n"
        "      sum(sum(k.stats.cache_misses.values()) for k in kernels))\n"
    )
    later = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                           check=True)  # fmt: skip
    assert later.stdout.split() == ["3", "0"]  # every kernel from the cache, none compiled
