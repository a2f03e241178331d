"""The origin's side of PST redemption records: every trusted issuer's record verification
keys, kept fresh, and a snapshot a policy reads per request without locks.

:class:`RecordKeySource` holds each trusted PST issuer (:class:`~pat_middleware.settings.pst.
PSTIssuerConfig`): configured keys, and a :class:`~.jwks_state.JwksState` for each issuer
whose JWK Set is fetched. It is a :class:`~.source.RefreshingSource`, so its fetches run as
issuer directories' do (all at once, each under ``directory_timeout``, one at a time per
issuer) through :func:`pat_middleware.discovery.refresher.attach`.

:meth:`RecordKeySource.current` returns a :class:`RecordKeys`: immutable, with ``trusted``
(issuer origin -> :class:`~pat_middleware.core.jwks.RecordKeySet`, what
:class:`~pat_middleware.core.redemption_record.RecordVerifier` takes) and a ready
``verifier``. It is rebuilt only when fetched keys change or a removed key's grace ends, so
the per-request path reads one attribute and compares two numbers. A record whose ``kid`` no
trusted set holds asks for a rate-limited refresh of that issuer's set
(:meth:`RecordKeySource.record_key_missing`; :meth:`RecordKeySource.verify` does both).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from ..core.jwks import RecordKeySet
from ..core.record_header import parse_redemption_record_header
from ..core.redemption_record import (
    DEFAULT_LEEWAY,
    RecordVerifier,
    RedemptionRecord,
    peek_redemption_record,
)
from ..errors import ConfigurationError, DecodeError, TokenError
from ..settings import DiscoveryOptions
from ..settings.pst import PSTIssuerConfig, PSTSettings
from .jwks_state import JwksState
from .source import RefreshingSource

_NEVER = math.inf


@dataclass(frozen=True, slots=True)
class RecordKeys:
    """Every trusted PST issuer's record keys at a moment, valid until ``valid_until`` or
    until the source's ``version`` moves. Immutable: share it between threads freely."""

    #: Issuer origin -> the keys that verify its records now (read-only).
    trusted: Mapping[str, RecordKeySet]
    #: A verifier over ``trusted``, the accepted origins and labels.
    verifier: RecordVerifier
    version: int
    valid_until: float


class RecordKeySource(RefreshingSource[JwksState]):
    """Every trusted PST issuer's record verification keys: configured ones, and for issuers
    with a ``jwks`` URL the fetched ones. Thread-safe. ``version`` moves whenever fetched keys
    change. Give it a fetcher with :func:`~pat_middleware.discovery.refresher.attach` when
    :attr:`discovers`."""

    def __init__(
        self,
        issuers: Sequence[PSTIssuerConfig],
        options: DiscoveryOptions,
        *,
        accepted_origins: Collection[str],
        leeway: float = DEFAULT_LEEWAY,
        clock: Callable[[], float] = time.time,
    ) -> None:
        states = [
            JwksState(
                issuer.origin,
                (issuer.jwks_url,),
                options,
                static=issuer.keys,
                setting=issuer.setting,
            )
            for issuer in issuers
            if issuer.jwks_url is not None
        ]
        origins = [issuer.origin for issuer in issuers]
        if len(set(origins)) != len(origins):
            raise ConfigurationError("pst_issuers", "each issuer origin may appear once")
        super().__init__(states, options, clock=clock)
        self._issuers = tuple(issuers)
        self._static = {issuer.origin: RecordKeySet(issuer.keys) for issuer in issuers}
        self._labels = {i.origin: i.labels for i in issuers if i.labels is not None}
        self._accepted = frozenset(accepted_origins)
        self._leeway = leeway
        try:
            RecordVerifier({}, self._accepted)  # a bad accepted origin fails here, once
        except DecodeError as e:
            raise ConfigurationError("pst_accepted_origins", str(e)) from None
        self._snapshot_lock = threading.Lock()
        self._snapshot = self.select(clock())

    @classmethod
    def from_settings(
        cls,
        settings: PSTSettings,
        options: DiscoveryOptions,
        *,
        leeway: float = DEFAULT_LEEWAY,
        clock: Callable[[], float] = time.time,
    ) -> RecordKeySource:
        return cls(
            settings.issuers,
            options,
            accepted_origins=settings.accepted_origins,
            leeway=leeway,
            clock=clock,
        )

    def __repr__(self) -> str:
        return f"RecordKeySource(issuers={len(self._issuers)}, fetched={len(self._states)})"

    def reset_locks(self) -> None:
        super().reset_locks()
        self._snapshot_lock = threading.Lock()

    def select(self, now: float) -> RecordKeys:
        """A new snapshot of every trusted issuer's keys at ``now``, in settings order."""
        with self._lock:
            version = self.version
            trusted: dict[str, RecordKeySet] = {}
            until = _NEVER
            for issuer in self._issuers:
                state = self._states.get(issuer.origin)
                if state is None:
                    trusted[issuer.origin] = self._static[issuer.origin]
                    continue
                trusted[issuer.origin], changes_at = state.select(now)
                until = min(until, changes_at)
        verifier = RecordVerifier(trusted, self._accepted, self._leeway, self._labels)
        return RecordKeys(MappingProxyType(trusted), verifier, version, until)

    def current(self, now: float | None = None) -> RecordKeys:
        """The snapshot for ``now`` (default: the clock): the last one while it holds, read
        without a lock; else a new one (and the refresher started, e.g. in a forked child)."""
        if now is None:
            now = self.clock()
        snapshot = self._snapshot
        if now < snapshot.valid_until and snapshot.version == self.version:
            return snapshot
        with self._snapshot_lock:
            snapshot = self._snapshot
            if now >= snapshot.valid_until or snapshot.version != self.version:
                self.ensure_running()
                snapshot = self._snapshot = self.select(now)
            return snapshot

    def record_key_missing(self, value: str | bytes, now: float) -> None:
        """A ``Sec-Redemption-Record`` value was refused with ``unknown_key``: ask for a
        refresh of the JWK Set of each fetched issuer whose record names a kid its set lacks,
        at most once per ``directory_unknown_key_refresh`` seconds each. Never blocks on the
        network; a value that does not parse asks for nothing."""
        try:
            entries = parse_redemption_record_header(value)
        except DecodeError:
            return
        trusted = self.current(now).trusted
        names: list[str] = []
        for entry in entries:
            keys = trusted.get(entry.issuer)
            if keys is None or entry.issuer not in self._states:
                continue
            try:
                kid = peek_redemption_record(entry.record).kid
            except DecodeError:
                continue
            if keys.get(kid) is None:
                names.append(entry.issuer)
        if names:
            self.key_missing(now, names)

    def verify(
        self, value: str | bytes | None, *, now: float | None = None
    ) -> RedemptionRecord | None:
        """Verify a ``Sec-Redemption-Record`` value with the current keys: a verified record,
        None when the header is absent or empty, else :class:`TokenError` (see
        :func:`~pat_middleware.core.redemption_record.verify_redemption_record_header`).
        A refusal also asks for a refresh of each issuer whose record named an unknown kid
        (:meth:`record_key_missing`): the error carries the first issuer's reason only."""
        if now is None:
            now = self.clock()
        try:
            return self.current(now).verifier.verify(value, now=now)
        except TokenError:
            if value is not None:
                self.record_key_missing(value, now)
            raise


__all__ = ["RecordKeySource", "RecordKeys"]
