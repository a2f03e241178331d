"""Scheduled key rotation for the test issuer, without I/O (RFC 9578 §4 ``not-before``).

Key ``n`` is preferred during ``[start + n*period, start + (n+1)*period)``. It is published
one period early with that start as its ``not-before``, so origins and clients learn it
before it takes over, and it stays published (and signing) for ``overlap`` seconds after it
stops being preferred, so tokens and challenges already handed out under it still work.
The directory lists keys newest first; clients take the first whose not-before has passed,
so the preferred key switches exactly at each not-before.

Keys are generated on demand (RSA-2048 generation takes tens of milliseconds) and dropped
once unpublished. A new key whose truncated key id collides with a published one is
replaced at once (RFC 9578 §6.5).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric import rsa

from ..errors import ConfigurationError
from ..tokens.blind_rsa import IssuerKey, encode_pss_spki
from .protocol import DEFAULT_REQUEST_PATH, Issuer, SigningKey

#: Makes a fresh issuer private key.
KeyFactory = Callable[[], rsa.RSAPrivateKey]
#: Tries to find a key whose truncated id collides with no published key.
_MAX_KEY_ATTEMPTS = 32


def new_rsa_key() -> rsa.RSAPrivateKey:
    """A fresh RSA-2048 private key (e = 65537)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class RotatingIssuer:
    """An :class:`Issuer` whose keys change every ``period`` seconds (whole seconds).

    ``overlap`` defaults to one period. ``start`` (default: now) is the not-before of key 0.
    :meth:`issuer_at` gives the :class:`Issuer` for a moment; it is rebuilt only when the
    published keys change. Thread-safe.
    """

    def __init__(
        self,
        name: str,
        *,
        period: int,
        overlap: int | None = None,
        start: int | None = None,
        clock: Callable[[], float] = time.time,
        key_factory: KeyFactory = new_rsa_key,
        request_uri: str = DEFAULT_REQUEST_PATH,
    ) -> None:
        if type(period) is not int or period < 1:
            raise ConfigurationError("rotate_every", "must be a whole number of seconds, >= 1")
        overlap = period if overlap is None else overlap
        if type(overlap) is not int or overlap < 0:
            raise ConfigurationError("overlap", "must be a whole number of seconds, >= 0")
        self.name = name
        self.period = period
        self.overlap = overlap
        self.clock = clock
        self.start = int(clock()) if start is None else start
        self._factory = key_factory
        self._request_uri = request_uri
        self._keys: dict[int, rsa.RSAPrivateKey] = {}
        self._current: tuple[tuple[int, ...], Issuer] | None = None
        self._lock = threading.Lock()
        self.issuer_at(self.start)  # validates name and request_uri now

    def __repr__(self) -> str:
        return f"RotatingIssuer(name={self.name!r}, period={self.period}, overlap={self.overlap})"

    def not_before(self, index: int) -> int:
        """When key ``index`` becomes the preferred one."""
        return self.start + index * self.period

    def published(self, now: float) -> tuple[int, ...]:
        """Indexes of the keys the directory lists at ``now``, newest first."""
        newest = max(self._period_index(now), 0) + 1
        # Key n is unpublished from not_before(n + 1) + overlap on.
        oldest = max(0, math.floor((now - self.start - self.overlap) / self.period))
        return tuple(range(newest, oldest - 1, -1))

    def next_change(self, now: float) -> int:
        """The first moment after ``now`` at which the published keys change."""
        published = self.published(now)
        newest, oldest = published[0], published[-1]
        return min(self.not_before(newest), self.not_before(oldest + 1) + self.overlap)

    def preferred_key(self, now: float) -> IssuerKey:
        """The key clients use at ``now``."""
        return self.issuer_at(now).preferred_key_at(now)

    def current(self) -> Issuer:
        return self.issuer_at(self.clock())

    def issuer_at(self, now: float) -> Issuer:
        indexes = self.published(now)
        with self._lock:
            if self._current is not None and self._current[0] == indexes:
                return self._current[1]
            for stale in set(self._keys) - set(indexes):
                del self._keys[stale]
            for index in sorted(indexes):
                if index not in self._keys:
                    self._keys[index] = self._fresh_key()
            issuer = Issuer(
                self.name,
                *(SigningKey(self._keys[i], self.not_before(i)) for i in indexes),
                request_uri=self._request_uri,
            )
            self._current = (indexes, issuer)
            return issuer

    def _fresh_key(self) -> rsa.RSAPrivateKey:
        taken = {_truncated_id(key) for key in self._keys.values()}
        for _ in range(_MAX_KEY_ATTEMPTS):
            key = self._factory()
            if _truncated_id(key) not in taken:
                return key
        raise ConfigurationError("key_factory", "keeps making keys with colliding key ids")

    def _period_index(self, now: float) -> int:
        return math.floor((now - self.start) / self.period)


def _truncated_id(key: rsa.RSAPrivateKey) -> int:
    return IssuerKey.from_spki(encode_pss_spki(key.public_key())).token_key_id[-1]


__all__ = ["KeyFactory", "RotatingIssuer", "new_rsa_key"]
