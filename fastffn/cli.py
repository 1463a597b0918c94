"""The command line: ``fastffn train`` runs the notebook's job."""

import argparse
import sys
import time

import numpy as np

from . import NLL, Linear, ReLU, Sequential, SoftMax, hard


def notebook_network():
    """The notebook's 2-10-10-2 ReLU network, drawn from the global random state."""
    return Sequential(
        [Linear(2, 10), ReLU(), Linear(10, 10), ReLU(), Linear(10, 2), SoftMax()], NLL()
    )


def train(args):
    np.random.seed(args.seed)
    X, Y = hard()
    model = notebook_network()
    model.backend = args.backend
    start = time.perf_counter()
    model.sgd(X, Y, iters=args.iters, lrate=args.lrate)
    seconds = time.perf_counter() - start
    print(f"Final training accuracy = {model.accuracy(X, Y):.2%} after {args.iters} iterations")
    print(f"Training took {seconds:.3f} s on the {args.backend} backend")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="fastffn", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    parser_train = commands.add_parser("train", help="train the notebook's network on hard()")
    parser_train.add_argument("--iters", type=int, default=100_000)
    parser_train.add_argument("--lrate", type=float, default=0.005)
    parser_train.add_argument("--seed", type=int, default=0)
    parser_train.add_argument("--backend", choices=["numba", "numpy"], default="numba")
    args = parser.parse_args(argv)
    train(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
