"""One progress line on stderr, redrawn in place: tqdm's bar where tqdm is installed and
stderr is a terminal, else the line this module draws (``\\r`` and the current count)."""

import sys
import time


class ProgressLine:
    """A progress line on stderr for ``total`` units, shown once ``delay`` seconds pass.

    Args:
        total (int): The units of the whole run.
        unit (str): Their name, e.g. "iterations".
        delay (float): Seconds before the line first shows: short runs print nothing.

    """

    def __init__(self, total, unit, delay=2.0):
        self.total, self.unit, self.delay = total, unit, delay
        self.start, self.shown, self.done = time.perf_counter(), None, 0  # None: not drawn yet
        self.bar = None
        if sys.stderr is not None and sys.stderr.isatty():
            try:
                from tqdm.auto import tqdm
            except ImportError:
                tqdm = None
            if tqdm is not None:
                self.bar = tqdm(total=total, unit=f" {unit}", delay=delay, file=sys.stderr,
                                unit_scale=True, leave=True)  # fmt: skip

    def update(self, done, extra=""):
        """Shows ``done`` of the total (at most twice a second), ``extra`` after it."""
        if self.bar is not None:
            self.bar.update(done - self.done)
            if extra:
                self.bar.set_postfix_str(extra.lstrip(", "), refresh=False)
            self.done = done
            return
        now = time.perf_counter()
        if now - self.start >= self.delay and (self.shown is None or now - self.shown > 0.5):
            self.show(done, now, extra)

    def show(self, done, now, extra=""):
        self.shown = now
        fraction = done / max(self.total, 1)
        print(
            f"\r[{'#' * int(30 * fraction):<30}] {fraction:4.0%} {done}/{self.total} {self.unit}, "
            f"{now - self.start:.1f} s{extra}",
            end="",
            file=sys.stderr,
            flush=True,
        )

    def close(self, finished, extra=""):
        """Ends the line (at 100% when ``finished``) so that later output starts a line."""
        if self.bar is not None:
            if finished:
                self.update(self.total, extra)
            self.bar.close()
        elif self.shown is not None:
            if finished:
                self.show(self.total, time.perf_counter(), extra)
            print(file=sys.stderr)
