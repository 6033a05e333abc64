"""The one source of randomness in xpnet.

Initial weights, dropout masks and shuffling all draw from one seeded
``numpy.random.Generator`` on the host; the result is cast on the host and then
moved to the device. Every backend therefore sees bit-identical numbers, which is
what makes the parity tests exact, and ``xpnet.seed(n)`` makes a run repeatable.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np

__all__ = ["seed", "generator", "preserved_state"]

_generator = np.random.default_rng()


def seed(n: int | None) -> None:
    """Reseed every source of randomness xpnet uses (weights, dropout, shuffling).

    ``None`` draws fresh entropy from the operating system.
    """
    from . import _validate

    _validate.integer("seed", "n", n, minimum=0, allow_none=True)
    global _generator
    _generator = np.random.default_rng(n)


def generator(rng: int | np.random.Generator | None = None) -> np.random.Generator:
    """The generator to draw from: ``rng`` if it is a Generator, a new one seeded with
    ``rng`` if it is an int, else xpnet's global generator."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is not None:
        return np.random.default_rng(rng)
    return _generator


@contextlib.contextmanager
def preserved_state() -> Iterator[None]:
    """Run a block, then put the global generator back where it was.

    Gradient checking evaluates a layer many times; wrapping each evaluation in
    this makes a dropout layer draw the same mask every time.
    """
    state = _generator.bit_generator.state
    try:
        yield
    finally:
        _generator.bit_generator.state = state
