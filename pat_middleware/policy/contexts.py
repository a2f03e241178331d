"""Redemption-context strategies and challenge windows (RFC 9577 §2.1.1.2, RFC 9576 §3.3).

Per-session contexts are derived, not stored: ``HMAC-SHA256(k, session_id | window)``, where
``window`` counts fixed time slices. Every worker and host with the same secret derives the
same context, so nothing is shared but the secret. A challenge built in window ``w`` is
accepted until ``(w + 1) * window_seconds + max_age``; the ``max-age`` sent with it says
exactly how long that is from the moment of sending. At redemption the handful of windows
still live are rebuilt, newest first, and their digests compared in constant time.
"""

from __future__ import annotations

import hmac
import math
import struct
from dataclasses import dataclass

from ..core.hmac import HmacSha256
from ..settings.model import ContextMode

_U8 = struct.Struct("!B")
_U16 = struct.Struct("!H")
_U64 = struct.Struct("!Q")

#: How many windows past the live ones are still recognised, to say "expired" rather than
#: "challenge_mismatch". Only consulted on the failure path.
EXPIRED_LOOKBACK_WINDOWS = 16


@dataclass(frozen=True, slots=True)
class Windows:
    """Fixed time slices that per-session contexts are derived from."""

    max_age: int
    window_seconds: int

    @classmethod
    def for_max_age(cls, max_age: int) -> Windows:
        """Slices of a quarter of max_age (at least 1 s): at most five live windows."""
        return cls(max_age=max_age, window_seconds=max(1, math.ceil(max_age / 4)))

    def index(self, now: float) -> int:
        return int(now // self.window_seconds)

    def deadline(self, window: int) -> float:
        """The last instant a challenge from ``window`` is accepted."""
        return (window + 1) * self.window_seconds + self.max_age

    def remaining(self, window: int, now: float) -> int:
        """Whole seconds from ``now`` until ``window`` expires: the max-age to send."""
        return max(0, int(self.deadline(window) - now))

    def live(self, now: float) -> range:
        """Windows whose challenges are still accepted at ``now``, newest first (a handful:
        at most ``max_age / window_seconds + 2``)."""
        # deadline(w) is (w + 1) * ws + max_age, written out: this runs per redemption.
        ws, max_age = self.window_seconds, self.max_age
        newest = int(now // ws)  # index(now); its deadline is always ahead of ``now``
        oldest = newest - max_age // ws - 1  # a guess, corrected exactly below
        while oldest < newest and (oldest + 1) * ws + max_age < now:
            oldest += 1  # deadline(oldest) is past: not live
        while oldest * ws + max_age >= now:
            oldest -= 1  # deadline(oldest - 1) is ahead: live too
        return range(newest, oldest - 1, -1)

    def expired(self, now: float) -> range:
        """Recently expired windows, newest first (for telling expired from unknown)."""
        first = self.live(now).stop
        return range(first, first - EXPIRED_LOOKBACK_WINDOWS, -1)

    @property
    def longest_validity(self) -> int:
        """The longest a challenge can stay acceptable: the replay TTL must cover it."""
        return self.window_seconds + self.max_age


class ContextDeriver:
    """Keyed derivation of 32-byte redemption contexts from (session id, time slot).

    ``epoch`` (a per-process store's, see :class:`~pat_middleware.stores.MemoryReplayStore`)
    is folded into the key once: contexts derived under another epoch never match, so a
    challenge handed out before a restart, or by another worker, is not redeemable here.
    """

    __slots__ = ("_mac",)

    def __init__(self, key: bytes, epoch: bytes = b"") -> None:
        if len(key) < 32:
            raise ValueError("context key must be at least 32 bytes")
        if epoch:
            key = hmac.digest(key, b"pat-middleware/v1/store-epoch/" + epoch, "sha256")
        self._mac = HmacSha256(key)

    def __repr__(self) -> str:
        return "ContextDeriver(<key hidden>)"

    def context(self, session_id: bytes, slot: int) -> bytes:
        return self._mac.digest(session_id + _U64.pack(slot))


def derive_key(secret: bytes, purpose: str) -> bytes:
    """A sub-key of the operator's secret for one purpose (HMAC-SHA256 as a KDF)."""
    return hmac.digest(secret, b"pat-middleware/v1/" + purpose.encode(), "sha256")


__all__ = [
    "ContextDeriver",
    "ContextMode",
    "Windows",
    "derive_key",
]
