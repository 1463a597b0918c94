"""The command line: ``fastffn train`` and ``fastffn bench``.

``fastffn train`` with no options is the notebook's job: the 2-10-10-2 ReLU
network trained by SGD on hard(), on the numba backend, printing the
notebook's report lines, the final training accuracy and the wall time.
``fastffn bench`` times the notebook's job on both backends in one run.
"""

import argparse
import os
import sys
import time

from . import datasets
from .backends import BACKENDS
from .layers import HIDDEN_ACTIVATIONS
from .persistence import save
from .sequential import network
from .training import print_report

COURSE_DATASETS = [name for name in datasets.__all__ if name not in ("blobs", "spirals")]
GENERATED_DATASETS = ["blobs", "spirals"]


class Parser(argparse.ArgumentParser):
    """argparse, with errors on one line and no usage dump."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def load_data(args):
    if args.dataset in COURSE_DATASETS:
        return getattr(datasets, args.dataset)()
    kwargs = {"n": args.samples, "classes": args.classes, "seed": args.seed}
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


class Progress:
    """Report lines as the notebook prints them, and a progress line on long runs.

    The progress line goes to stderr, at most twice a second, once the run has
    taken more than two seconds.
    """

    def __init__(self, iters, quiet):
        self.iters, self.quiet = iters, quiet
        self.start = self.shown = time.perf_counter()
        self.accuracy = None

    def __call__(self, it, loss, accuracy):
        if not self.quiet:
            print_report(it, accuracy, loss)
        self.accuracy = accuracy
        now = time.perf_counter()
        if now - self.start > 2 and now - self.shown > 0.5:
            self.show(it + 1, now)

    def show(self, done, now):
        self.shown = now
        bar = "#" * int(30 * done / self.iters)
        print(
            f"\r[{bar:<30}] {done / self.iters:4.0%} {done}/{self.iters} iterations, "
            f"{now - self.start:.1f} s, accuracy {self.accuracy:.3f}",
            end="",
            file=sys.stderr,
            flush=True,
        )

    def close(self, finished):
        """Ends the progress line (at 100% when ``finished``) so later output starts a line."""
        if self.shown > self.start:
            if finished:
                self.show(self.iters, time.perf_counter())
            print(file=sys.stderr)


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
    X, Y = load_data(args)
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
    print(f"Training took {seconds:.3f} s on the {args.backend} backend ({args.dtype})")
    if args.save is not None:
        save(model, args.save)
        print(f"Saved the model to {args.save}")
    if args.plot:
        from .plot import save_report

        save_report(model, X, Y, history, args.plot)
        print(f"Saved the pictures to {args.plot}")


def bench(args):
    from . import workloads

    iters = args.iters or workloads.NOTEBOOK_ITERS
    notebook = ("notebook job: 2-10-10-2, batch 1", workloads.notebook_job, {"iters": iters})
    jobs = [(*notebook, workloads.PATHS)]
    if args.large:
        jobs.append(("784-256-256-10, batch 128, 1 epoch", workloads.mlp_epoch, {}, BACKENDS))
    print(f"{'workload':<36} {'path':<13} {'best of ' + str(args.repeat):>12} {'vs numpy':>9}")
    for title, workload, kwargs, paths in jobs:
        times = {}
        for path in sorted(paths, key=lambda p: p != "numpy"):  # the reference first
            run = workload(path, **kwargs)
            best = float("inf")
            for _ in range(args.repeat):
                start = time.perf_counter()
                run()
                best = min(best, time.perf_counter() - start)
            times[path] = best
            ratio = times["numpy"] / best
            print(f"{title:<36} {path:<13} {best * 1e3:10.1f} ms {ratio:8.1f}x", flush=True)


def make_parser():
    parser = Parser(prog="fastffn", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    defaults = argparse.ArgumentDefaultsHelpFormatter

    t = commands.add_parser("train", help="train a network", formatter_class=defaults)
    t.set_defaults(run=train)
    add = t.add_argument
    add("--dataset", choices=COURSE_DATASETS + GENERATED_DATASETS, default="hard", help="data set")
    add("--samples", type=positive, default=1000, help="points of a generated dataset")
    add("--classes", type=positive, default=3, help="classes of a generated dataset")
    add("--features", type=positive, default=2, help="features of the blobs dataset")
    add("--layers", type=parse_layers, default="10,10", help="hidden layer widths")
    add("--activation", choices=list(HIDDEN_ACTIVATIONS), default="relu", help="hidden activation")
    add("--iters", type=int, default=100_000, help="SGD iterations")
    add("--lrate", type=float, default=0.005, help="step size")
    add("--batch-size", type=positive, default=1, help="columns per step")
    add("--every", type=positive, default=250, help="iterations between report lines")
    add("--seed", type=int, default=0, help="seed for the weights, the samples and generated data")
    add("--backend", choices=BACKENDS, default="numba", help="kernels to run on")
    add("--dtype", choices=["float64", "float32"], default="float64", help="float precision")
    add("--save", metavar="MODEL.npz", help="save the model (fastffn.load reads it)")
    add("--plot", metavar="OUT.png", help="save decision regions and the training curve")
    add("--quiet", action="store_true", help="no report lines, only the summary")

    b = commands.add_parser("bench", help="time the notebook's job on both backends")
    b.formatter_class = defaults
    b.set_defaults(run=bench)
    b.add_argument("--iters", type=positive, help="iterations (default: W1's 10,000)")
    b.add_argument("--repeat", type=positive, default=3, help="runs per path; the best counts")
    b.add_argument("--large", action="store_true", help="also one epoch of a 784-256-256-10 MLP")
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
