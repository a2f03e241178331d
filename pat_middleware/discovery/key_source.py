"""Every configured issuer's token keys, and the refreshes that keep them (RFC 9578 §4).

:class:`KeySource` holds every configured issuer: static keys, and a
:class:`~pat_middleware.discovery.directory_state.DirectoryState` for each issuer with a
directory. Its refreshes are :class:`~pat_middleware.discovery.source.RefreshingSource`'s:
each issuer's refresh is a task of its own, cut by cancellation at ``directory_timeout``, so
no issuer waits for another. The HTTP fetcher and the background thread live in
:mod:`pat_middleware.discovery.refresher`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..settings import DiscoveryOptions, IssuerConfig
from .directory_state import DirectoryState, IssuerKeys, first_per_type
from .source import RefreshingSource

_NEVER = math.inf


@dataclass(frozen=True, slots=True)
class KeySelection:
    """Every issuer's keys, valid until ``valid_until`` or until the source's version moves."""

    issuers: tuple[IssuerKeys, ...]
    version: int
    valid_until: float


class KeySource(RefreshingSource[DirectoryState]):
    """Every configured issuer's keys: static ones, and for issuers with a directory the
    fetched ones. Thread-safe. ``version`` moves whenever fetched keys change.

    A token that names an unknown key calls :meth:`key_missing` (a rate-limited refresh of
    every directory); :meth:`select` gives every issuer's keys at a moment.
    """

    def __init__(
        self,
        issuers: Sequence[IssuerConfig],
        options: DiscoveryOptions,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        states = [
            DirectoryState(
                issuer.name,
                issuer.directory_urls,
                options,
                static=issuer.keys,
                allow_4096=issuer.allow_4096,
                setting=issuer.directory_setting,
                token_types=issuer.token_types,
            )
            for issuer in issuers
            if issuer.directory_urls
        ]
        super().__init__(states, options, clock=clock)
        self._issuers = tuple(issuers)

    def __repr__(self) -> str:
        return f"KeySource(issuers={len(self._issuers)}, directories={len(self._states)})"

    def select(self, now: float) -> KeySelection:
        """Every issuer's keys at ``now``, in settings order."""
        with self._lock:
            version = self.version
            out: list[IssuerKeys] = []
            until = _NEVER
            for issuer in self._issuers:
                state = self._states.get(issuer.name)
                if state is None:
                    key = issuer.keys[0] if issuer.keys else None
                    advertised = first_per_type(issuer.keys)
                    out.append(IssuerKeys(issuer.name, key, issuer.keys, advertised))
                    continue
                keys, changes_at = state.select(now)
                out.append(keys)
                until = min(until, changes_at)
        return KeySelection(tuple(out), version, until)


__all__ = ["KeySelection", "KeySource"]
