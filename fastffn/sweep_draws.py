"""The sample columns each model of a sweep draws: as its own ``sgd`` would draw them.

A sweep builds its models one after another from NumPy's global random state, as
a loop of ``Sequential.sgd`` calls would; each model's columns are then drawn from
the state it started at (``Draws``), block by block, and the global state is left
as the last model's ``sgd`` leaves it.
"""

import ctypes
import functools
import sys

import numpy as np

from .schedule import MAX_INDICES


def skip_draws(n, iters, b, after):
    """Draws from the global state what a model's ``sgd`` draws (iters by b columns of n),
    keeping none: the next model starts where one after another would. ``after`` maps a
    state drawn from before (and b) to the state after it: a grid of one seed draws once."""
    before = stream_state()
    if isinstance(before, bytes) and (before, b) in after:
        set_stream_state(after[before, b])
        return
    _draw_through(np.random.randint, n, iters, b)
    if isinstance(before, bytes):
        after[before, b] = stream_state()


def _draw_through(randint, n, iters, b):
    """``randint(n, size=(iters, b))``'s draws, in blocks of bounded size, none kept."""
    block = max(1, MAX_INDICES // b)
    for start in range(0, iters, block):
        randint(n, size=(min(block, iters - start), b), dtype=np.int64)


class Draws:
    """The sample columns of models of one batch size, drawn block by block as each model's
    ``sgd`` would draw them from the global state: memory bounded by the block, whatever
    the iterations (a sweep's columns were once drawn whole, up front).

    Args:
        starts (list): Each model's state of the global generator when its draws begin
            (``stream_state``); models starting from one state share their draws.
        n (int): The columns to draw from.
        b (int): Columns a step.

    """

    def __init__(self, starts, n, b):
        self.starts, self.n, self.b = list(starts), n, b
        self.generators, self.drawn = None, 0

    def __getstate__(self):  # the states travel (to a Dask worker), not the generators
        return {**self.__dict__, "generators": None, "drawn": 0}

    def part(self, first, last):
        """The draws of models ``first`` to ``last`` - 1, from their starts."""
        return Draws(self.starts[first:last], self.n, self.b)

    def take(self, count, groups, lanes):
        """The next ``count`` steps' columns of every model, laid out for ``numba_lanes``:
        groups by count by b by lanes (the models in ``Groups``' slots)."""
        if self.generators is None:
            unique = {}
            for state in self.starts:  # one generator a distinct start
                if _key(state) not in unique:
                    unique[_key(state)] = _generator(state)
            self.generators = [unique[_key(state)] for state in self.starts]
        out = np.empty((groups, count, self.b, lanes), dtype=np.int64)
        drawn = {}
        for i in range(groups * lanes):  # padding repeats the last model (``Groups``)
            generator = self.generators[min(i, len(self.generators) - 1)]
            if id(generator) not in drawn:
                size = (count, self.b)
                drawn[id(generator)] = generator.randint(self.n, size=size, dtype=np.int64)
            out[i // lanes, ..., i % lanes] = drawn[id(generator)]
        self.drawn += count
        return out

    def after(self, iters):
        """The global state as the last model's ``sgd`` of ``iters`` steps leaves it."""
        if self.generators is not None and self.drawn == iters:
            generator = self.generators[-1]
        else:  # drawn on Dask's workers: drawn here again
            generator = _generator(self.starts[-1])
            _draw_through(generator.randint, self.n, iters, self.b)
        state = generator.get_state()
        return _as_bytes(state) if isinstance(self.starts[-1], bytes) else state


def _key(state):
    return state if isinstance(state, bytes) else repr(state)


def _generator(state):
    """A RandomState that draws as the global one did from ``state`` (``stream_state``'s)."""
    if isinstance(state, bytes):
        bits = np.random.MT19937()
        ctypes.memmove(bits.ctypes.state_address, state, _MT19937_BYTES)
        return np.random.RandomState(bits)
    generator = np.random.RandomState()
    generator.set_state(state)
    return generator


#: NumPy's C struct of an MT19937 state: 624 uint32 words, then an int position.
_MT19937_BYTES = 624 * 4 + 4


def stream_state():
    """The bytes of the global generator's MT19937 state (what ``randint`` draws from;
    ``get_state`` adds the cached Gaussian), read in place: 1 us, where ``get_state``
    takes 60-80 us; ``get_state``'s tuple where they do not read as it says."""
    if not _layout_is_numpys():
        return np.random.get_state()
    return ctypes.string_at(np.random.get_bit_generator().ctypes.state_address, _MT19937_BYTES)


def set_stream_state(state):
    """Writes bytes ``stream_state`` read back into the global generator (``randint``'s
    part of ``set_state``, which takes 60-80 us); a ``get_state`` tuple by ``set_state``."""
    if not isinstance(state, bytes):
        np.random.set_state(state)
        return
    ctypes.memmove(np.random.get_bit_generator().ctypes.state_address, state, _MT19937_BYTES)


@functools.cache
def _layout_is_numpys():
    """Whether ``stream_state``'s bytes are the state ``np.random.get_state`` gives."""
    address = np.random.get_bit_generator().ctypes.state_address
    return ctypes.string_at(address, _MT19937_BYTES) == _as_bytes(np.random.get_state())


def _as_bytes(state):
    """A ``get_state`` tuple's MT19937 words and position, laid out as in NumPy's C struct."""
    _, key, pos, *_ = state
    return key.astype(np.uint32).tobytes() + int(pos).to_bytes(4, sys.byteorder, signed=True)
