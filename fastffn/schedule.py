"""A run's schedule: chunks of steps between looks from Python, the iterations that
record, the notebook's report line, and the error a diverged run stops with.

Shared by every driver: one model (``training``) and many (``sweeps``).
"""

import sys
import time

#: Seconds a compiled chunk aims to run: Ctrl-C lands between chunks.
CHUNK_SECONDS = 0.1
#: Most sample indices (steps times batch) drawn or run at once, to bound memory.
MAX_INDICES = 1 << 20
#: The chunk the last compiled run of a kind measured (``next_chunk``, ``first_chunk``; a compiled
#: sgd's kind is ``CompiledRunner.kind`` and the batch size, a sweep's its loop and
#: groups): a run starts with it, not with a one-step call to measure from (three
#: calls of the compiled loop for W1, not one: 2% of its time).
_CHUNKS = {}


def first_chunk(kind, default=1):
    """The steps of a run's first chunk: what the last run of ``kind`` measured."""
    return _CHUNKS.get(kind, default)


def next_chunk(kind, count, start, most=None):
    """The steps of about CHUNK_SECONDS, from ``count`` steps begun at ``perf_counter()``
    ``start`` (at most ``most``); kept as the first chunk of the next run of ``kind``
    (a hashable, or None to keep nothing)."""
    rate = count / max(time.perf_counter() - start, 1e-6)
    chunk = max(1, int(rate * CHUNK_SECONDS))
    if most is not None:
        chunk = min(chunk, most)
    if kind is not None:
        _CHUNKS[kind] = chunk
    return chunk


def is_record(it, every):
    """Whether iteration ``it`` records (as the notebook's print_accuracy: it % every == 1)."""
    return every > 0 and it % every == 1 % every


def next_record(it, every):
    """The first iteration from ``it`` on that records (``every`` > 0)."""
    return it + (1 - it) % every


def print_report(*lines):
    """Prints the notebook's report line for each ``(it, acc, loss)`` (what its
    ``print`` of six items prints).

    One write of the lines' formatted text and one flush: 1.3 us a line, where
    ``print``'s six items took 5 us and a flush a line 1.9 us.
    """
    out = sys.stdout
    out.write(
        "".join(f"Iteration = {it} \tAcc = {acc} \tLoss = {loss}\n" for it, acc, loss in lines)
    )
    out.flush()


class Diverged(FloatingPointError):
    """Training stopped at a step whose loss, gradients or outputs were not finite.

    Attributes:
        iteration (int): That step; the model keeps its weights from before it.
        history (list): The records of the steps before it.

    """

    def __init__(self, it, loss, history=(), where="", rate="lrate"):
        super().__init__(
            f"training diverged {where}at iteration {it}: the loss ({loss}) or a gradient is "
            f"not finite; the model keeps its weights from before that step (try a smaller "
            f"{rate})"
        )
        self.iteration, self.loss, self.history = it, loss, list(history)
