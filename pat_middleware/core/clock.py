"""The policy's one clock: wall time that never goes backwards within a process."""

from __future__ import annotations

import time
from collections.abc import Callable


def high_water(clock: Callable[[], float] = time.time) -> Callable[[], float]:
    """``clock`` held at the latest reading so far.

    When the wall clock is stepped back (an NTP correction, a VM restored from a
    snapshot), this clock stays at its high-water mark until wall time passes it again.
    The policy reads everything from it (challenge windows, cookie ages, key not-befores)
    and builds its memory store on it, so a spent nonce expires on the same clock that
    says its challenge expired: a step back re-opens no window and no spent nonce.

    A function, not an object with ``__call__``: it is read a few times per request.
    Threads reading at the same moment may see two readings a few microseconds apart in
    either order (reading and updating are two steps), never a step of the wall clock.
    """
    high = clock()

    def now() -> float:
        nonlocal high
        reading = clock()
        if reading < high:
            return high
        high = reading
        return reading

    return now


__all__ = ["high_water"]
