"""The command line: ``fastffn train``, ``fastffn sweep`` and ``fastffn warmup``.

``fastffn train`` with no options is the notebook's job: the 2-10-10-2 ReLU
network trained by SGD on hard(), on the numba backend, printing the
notebook's report lines, the final training accuracy and the wall time.
``fastffn sweep`` trains a grid of learning rates, seeds and batch sizes at once
(``fastffn.sweep``), here or on a Dask cluster, and prints the grid best first.
``fastffn warmup`` fills the compile cache ahead of use. ``fastffn --version``
says which numba runs and whether the loop built at install is in use. Speed
is measured by the benchmark suites (``benchmarks/``).
"""

import argparse
import contextlib
import functools
import os
import sys
import time

from . import datasets
from ._validation import SEED_MAX, as_seed
from .backends import BACKENDS
from .layers import HIDDEN_ACTIVATIONS
from .persistence import save
from .progress import ProgressLine
from .schedule import print_report
from .sequential import network
from .sweeps import MAX_MODELS

COURSE_DATASETS = [name for name in datasets.__all__ if name not in ("blobs", "spirals")]
GENERATED_DATASETS = ["blobs", "spirals"]


class Parser(argparse.ArgumentParser):
    """argparse, with errors on one line and no usage dump."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def load_data(args, seed):
    if args.dataset in COURSE_DATASETS:
        return getattr(datasets, args.dataset)()
    kwargs = {"n": args.samples, "classes": args.classes, "seed": seed}
    if args.dataset == "blobs":
        kwargs["d"] = args.features
    return getattr(datasets, args.dataset)(**kwargs)


def positive(text):
    """An argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"needs an integer >= 1, got {text!r}")
    return value


def parse_layers(text):
    """'10,10' -> (10, 10); '' -> () (no hidden layer)."""
    try:
        widths = tuple(int(w) for w in text.split(",") if w.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"needs widths like 10,10, got {text!r}") from None
    if any(w < 1 for w in widths):
        raise argparse.ArgumentTypeError(f"widths must be >= 1, got {text!r}")
    return widths


def numbers(kind):
    """An argparse type: comma-separated numbers of ``kind`` (float or int), e.g. 0.01,0.03."""

    def parse(text):
        try:
            values = [kind(v) for v in text.split(",") if v.strip()]
        except ValueError:
            values = []
        if not values:
            raise argparse.ArgumentTypeError(f"needs {kind.__name__}s like 1,2,3, got {text!r}")
        return values

    return parse


def seed(text):
    """An argparse type: a seed of NumPy's global state, 0 to 2**32 - 1."""
    try:
        return as_seed("seed", int(text))
    except ValueError:
        message = f"needs a seed from 0 to {SEED_MAX}, got {text!r}"
        raise argparse.ArgumentTypeError(message) from None


def seed_list(text):
    """An argparse type: seeds as ranges and single values, '0-15' or '0-3,7' or '5'; each
    from 0 to 2**32 - 1, at most ``MAX_MODELS`` of them (counted before any is listed)."""
    ranges = []
    for part in text.split(","):
        first, dash, last = part.strip().partition("-")
        try:
            low, high = int(first), int(last if dash else first)
        except ValueError:
            low, high = 0, -1
        if low < 0 or high < low or high > SEED_MAX:
            raise argparse.ArgumentTypeError(
                f"needs seeds from 0 to {SEED_MAX} like 0-15 or 0,3,7, got {text!r}"
            )
        ranges.append(range(low, high + 1))
    count = sum(map(len, ranges))
    if count > MAX_MODELS:
        raise argparse.ArgumentTypeError(
            f"{text!r} is {count} seeds; a sweep trains at most {MAX_MODELS} models"
        )
    return [s for r in ranges for s in r]


class Progress:
    """Report lines as the notebook prints them, and a progress line on long runs."""

    def __init__(self, iters, quiet):
        self.quiet, self.line = quiet, ProgressLine(iters, "iterations")
        self.accuracy = None

    def __call__(self, it, loss, accuracy):
        if not self.quiet:
            print_report((it, accuracy, loss))
        self.accuracy = accuracy
        self.line.update(it + 1, f", accuracy {accuracy:.3f}")

    def close(self, finished):
        extra = "" if self.accuracy is None else f", accuracy {self.accuracy:.3f}"
        self.line.close(finished, extra)


def check_output(option, path):
    """Raises ValueError unless ``path`` can be written, before any training."""
    if not path:
        raise ValueError(f"{option} needs a file name, got {path!r}")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ValueError(f"{option} {path}: the folder {folder} does not exist")
    if os.path.isdir(path):
        raise ValueError(f"{option} {path}: is a folder")
    if not os.access(folder, os.W_OK):
        raise ValueError(f"{option} {path}: cannot write in {folder}")


def train(args):
    # Everything that can fail before training fails before it.
    for option, path in (("--save", args.save), ("--plot", args.plot)):
        if path is not None:
            check_output(option, path)
    if args.plot:
        from .plot import pyplot

        pyplot()  # when matplotlib is missing
    X, Y = load_data(args, args.seed)
    held_out = None
    if args.test_size:
        X, Y, *held_out = datasets.split(X, Y, args.test_size, args.seed)
    widths = (X.shape[0], *args.layers, Y.shape[0])
    activation = HIDDEN_ACTIVATIONS[args.activation]
    model = network(widths, args.seed, args.backend, args.dtype, activation)

    progress = Progress(args.iters, args.quiet)
    start = time.perf_counter()
    try:
        history = model.sgd(
            X, Y, args.iters, args.lrate, batch_size=args.batch_size, report=progress,
            every=args.every,
        )  # fmt: skip
    finally:
        progress.close(finished=sys.exc_info()[0] is None)
    seconds = time.perf_counter() - start

    layout = "-".join(map(str, widths))
    print(
        f"Final training accuracy = {model.accuracy(X, Y):.2%} on {args.dataset} "
        f"({layout} {args.activation}, {args.iters} iterations, batch {args.batch_size})"
    )
    if held_out:
        X_test, Y_test = held_out
        print(
            f"Held-out accuracy = {model.accuracy(X_test, Y_test):.2%} on {X_test.shape[1]} samples"
        )
    print(f"Training took {seconds:.3f} s on the {args.backend} backend ({args.dtype})")
    if args.save is not None:
        save(model, args.save)
        print(f"Saved the model to {args.save}")
    if args.plot:
        from .plot import save_report

        save_report(model, X, Y, history, args.plot)
        print(f"Saved the pictures to {args.plot}")


def run_sweep(args):
    from .sweeps import sweep

    if args.plot is not None:
        check_output("--plot", args.plot)
        from .plot import pyplot

        pyplot()  # when matplotlib is missing
    X, Y = load_data(args, args.data_seed)
    held_out = {}
    if args.test_size:  # ranked by the held-out accuracy
        X, Y, held_out["X_val"], held_out["Y_val"] = datasets.split(X, Y, args.test_size,
                                                                    args.data_seed)  # fmt: skip
    widths = (X.shape[0], *args.layers, Y.shape[0])
    activation = HIDDEN_ACTIVATIONS[args.activation]
    # seed None: the sweep seeds NumPy's global state with each --seeds value first
    build = functools.partial(network, widths, None, "numba", args.dtype, activation)
    grid = {"lrate": args.lrate, "seed": args.seeds, "batch_size": args.batch_size}
    line = ProgressLine(args.iters * len(args.lrate) * len(args.seeds) * len(args.batch_size),
                        "model-iterations", delay=0)  # fmt: skip
    start = time.perf_counter()
    with cluster(args) as client:
        try:
            result = sweep(build, X, Y, iters=args.iters, every=args.every, client=client,
                           report=lambda done, total: line.update(done), **grid,
                           **held_out)  # fmt: skip
        finally:
            line.close(finished=sys.exc_info()[0] is None)
    seconds = time.perf_counter() - start
    print(result.table(best_first=True))
    where = "this machine" if client is None else f"{args.scheduler or 'a local Dask cluster'}"
    print(
        f"{len(result)} models of {'-'.join(map(str, widths))} {args.activation} on "
        f"{args.dataset}, {args.iters} iterations each: {seconds:.3f} s on {where}"
    )
    if args.plot is not None:
        from .plot import sweep_report

        sweep_report(result, args.plot)
        print(f"Saved the pictures to {args.plot}")


@contextlib.contextmanager
def cluster(args):
    """A Dask client for --workers (a local cluster) or --scheduler; None for neither."""
    if not (args.workers or args.scheduler):
        yield None
        return
    try:
        import distributed
    except ImportError:
        raise ImportError(
            "--workers and --scheduler need Dask: pip install 'fastffn[dask]'"
        ) from None
    if args.scheduler:
        try:
            client = distributed.Client(args.scheduler, timeout=10)
        except (OSError, TimeoutError) as err:
            raise OSError(f"--scheduler {args.scheduler}: cannot connect ({err})") from None
        with client:
            yield client
        return
    local = distributed.LocalCluster(
        n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=":0"
    )
    with local, distributed.Client(local) as client:
        yield client


def run_warmup(args):
    from .warmup import warmup

    start = time.perf_counter()
    kinds = warmup(args.kinds)
    print(f"compiled for {', '.join(kinds)} in {time.perf_counter() - start:.1f} s")


def kind_list(text):
    """An argparse type: kinds of run to compile for, e.g. sgd,sweep."""
    from .warmup import KINDS

    kinds = [k.strip() for k in text.split(",") if k.strip()]
    if not kinds or not set(kinds) <= set(KINDS):
        raise argparse.ArgumentTypeError(f"needs kinds among {','.join(KINDS)}, got {text!r}")
    return kinds


def add_data_options(add):
    """The options train and sweep share: the data set and the network's hidden layers."""
    add("--dataset", choices=COURSE_DATASETS + GENERATED_DATASETS, default="hard", help="data set")
    add("--samples", type=positive, default=1000, help="points of a generated dataset")
    add("--classes", type=positive, default=3, help="classes of a generated dataset")
    add("--features", type=positive, default=2, help="features of the blobs dataset")
    add("--layers", type=parse_layers, default="10,10", help="hidden layer widths")
    add("--activation", choices=list(HIDDEN_ACTIVATIONS), default="relu", help="hidden activation")


def version():
    """What ``fastffn --version`` prints: versions, and whether the loop built at install runs."""
    import importlib.metadata

    from . import __version__
    from .backends import aot

    numba = importlib.metadata.version("numba")
    return f"fastffn {__version__} (numba {numba}; {aot.status()})"


class Version(argparse.Action):
    """``--version``: computed only when asked (it reads the extension's stamp)."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, help="print the versions and exit")

    def __call__(self, parser, namespace, values, option_string=None):
        print(version())
        parser.exit(0)


def make_parser():
    parser = Parser(prog="fastffn", description=__doc__)
    parser.add_argument("--version", action=Version)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    defaults = argparse.ArgumentDefaultsHelpFormatter

    t = commands.add_parser("train", help="train a network", formatter_class=defaults)
    t.set_defaults(run=train)
    add = t.add_argument
    add_data_options(add)
    add("--iters", type=int, default=100_000, help="SGD iterations")
    add("--lrate", type=float, default=0.005, help="step size")
    add("--batch-size", type=positive, default=1, help="columns per step")
    add("--every", type=positive, default=250, help="iterations between report lines")
    add("--seed", type=seed, default=0, help="seed for the weights, the samples and generated data")
    add("--test-size", type=float, default=0.0, help="share of the data held out to test on")
    add("--backend", choices=BACKENDS, default="numba", help="kernels to run on")
    add("--dtype", choices=["float64", "float32"], default="float64", help="float precision")
    add("--save", metavar="MODEL.npz", help="save the model (fastffn.load reads it)")
    add("--plot", metavar="OUT.png", help="save decision regions and the training curve")
    add("--quiet", action="store_true", help="no report lines, only the summary")

    w = commands.add_parser(
        "sweep", help="train a grid of models at once", formatter_class=defaults
    )
    w.set_defaults(run=run_sweep)
    add = w.add_argument
    add_data_options(add)
    add("--lrate", type=numbers(float), default="0.001,0.003,0.01,0.03", help="step sizes")
    add("--seeds", type=seed_list, default="0-3", help="seeds of the weights and samples")
    add("--batch-size", type=numbers(int), default="1", help="columns per step, one or more")
    add("--iters", type=positive, default=10_000, help="SGD iterations for each model")
    add("--every", type=positive, default=250, help="iterations between recorded losses")
    add("--dtype", choices=["float64", "float32"], default="float64", help="float precision")
    add("--data-seed", type=seed, default=0, help="seed of a generated dataset and of the split")
    add("--test-size", type=float, default=0.0,
        help="share of the data held out: models ranked by their accuracy on it")  # fmt: skip
    where = w.add_mutually_exclusive_group()
    where.add_argument(
        "--workers", type=positive, help="train on a local Dask cluster of N processes"
    )
    where.add_argument(
        "--scheduler", metavar="ADDRESS", help="train on a Dask cluster, e.g. tcp://host:8786"
    )
    add("--plot", metavar="OUT.png", help="save the loss curves and accuracy against learning rate")

    u = commands.add_parser(
        "warmup", help="fill the compile cache (for images and containers)",
        formatter_class=defaults,
    )  # fmt: skip
    u.set_defaults(run=run_warmup)
    u.add_argument("--kinds", type=kind_list, help="sgd,optimizers,classifier,sweep,kernels "
                   "(default: all)")  # fmt: skip
    return parser


def main(argv=None):
    """Runs the command line; returns the exit status."""
    parser = make_parser()
    args = parser.parse_args(argv)
    try:
        args.run(args)
        sys.stdout.flush()  # a closed pipe shows here, inside the try
    except BrokenPipeError:
        # The reader (say, head) has gone: stop quietly, as a killed pipe writer does.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except MemoryError as err:
        print(f"fastffn: error: the data or the model do not fit in memory: {err}", file=sys.stderr)
        return 1
    except (ValueError, TypeError, ImportError, OSError, FloatingPointError) as err:
        print(f"fastffn: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("fastffn: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
