"""A circuit breaker for a store on the network: fail fast while it is known to be down."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable

from .base import StoreUnavailable


class Breaker:
    """Fails fast for ``back_off`` seconds after a failure, then lets one probe through.

    Shared by the sync and async forms; its lock is never held across I/O.
    """

    __slots__ = ("_back_off", "_clock", "_down_until", "_lock", "_name", "_reason", "_secrets")

    def __init__(
        self,
        back_off: float,
        clock: Callable[[], float],
        name: str,
        secrets: Iterable[str | None] = (),
    ) -> None:
        self._back_off = back_off
        self._name = name
        # Never repeated from a client's error text (redis-py 5's reprs held passwords).
        self._secrets = tuple(sorted({s for s in secrets if s}, key=len, reverse=True))
        self._clock = clock
        self._down_until = 0.0
        self._reason = ""
        self._lock = threading.Lock()

    def check(self, where: str) -> None:
        """Raise at once while backing off; past the back-off, admit this caller as the probe
        (the others keep failing fast until it answers)."""
        if not self._down_until:
            return
        with self._lock:
            now = self._clock()
            remaining = self._down_until - now
            if remaining > 0:
                raise StoreUnavailable(
                    f"{self._name} {where} unavailable ({self._reason}); "
                    f"backing off {remaining:.1f} s",
                    retry_after=max(1, math.ceil(remaining)),
                )
            if self._down_until:
                self._down_until = now + self._back_off  # this caller probes

    def failed(self, where: str, error: BaseException) -> StoreUnavailable:
        first_line = (str(error).splitlines() or [""])[0]
        for secret in self._secrets:
            first_line = first_line.replace(secret, "<redacted>")
        first_line = first_line[:120]
        reason = f"{type(error).__name__}: {first_line}" if first_line else type(error).__name__
        with self._lock:
            self._down_until = self._clock() + self._back_off
            self._reason = reason
        return StoreUnavailable(
            f"{self._name} {where} failed ({reason})",
            retry_after=max(1, math.ceil(self._back_off)),
        )

    def succeeded(self) -> None:
        if self._down_until:
            with self._lock:
                self._down_until = 0.0


__all__ = ["Breaker"]
