"""A PST issuer's record verification keys without I/O: JWK Set answers in, trusted keys out.

:class:`JwksState` is the state machine of one trusted PST issuer's JWK Set (published at
:data:`~pat_middleware.core.jwks.JWKS_PATH`, ``application/jwk-set+json``). It is kept by the
same rules as issuer directories (:class:`~.resource.ResourceState`: ``Cache-Control``
freshness clamped to the refresh bounds, ETag and 304, back-off, the last good keys kept
through failures, only the JWK Set media type or JSON, a rate-limited refresh when a record
names an unknown ``kid``). What differs is the document:

* The set is read with :meth:`RecordKeySet.from_published
  <pat_middleware.core.jwks.RecordKeySet.from_published>`: keys for other purposes are
  skipped, a set that publishes private key material or has no usable key is refused (and
  the last good keys kept).
* A key that leaves the set stays trusted for ``max(freshness, directory_key_grace)``: a
  record signed just before the issuer rotated its signing key still verifies while this
  origin may not have seen the new set, and an issuer that keeps old keys published for the
  records' lifetime (ours does) needs no more.
* Configured keys (``jwks_file``) are always trusted, beside the fetched ones.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from ..core.jwks import JWKS_MEDIA_TYPE, MAX_JWKS_KEYS, MAX_JWKS_LENGTH, RecordKey, RecordKeySet
from ..settings import DiscoveryOptions
from .resource import ResourceState, retire

_NEVER = math.inf
_SHOWN_KIDS = 4
_SHOWN_KID_LENGTH = 16


class JwksState(ResourceState):
    """The JWK Set state machine of one PST issuer. Not thread-safe: the source locks."""

    noun = "JWK Set"
    media_type = JWKS_MEDIA_TYPE
    max_size = MAX_JWKS_LENGTH
    key_noun = "record verification key"
    without_keys = "its redemption records are then refused as unknown_key until keys arrive"
    static: tuple[RecordKey, ...]
    listed: tuple[RecordKey, ...]
    #: kid -> (key, trusted until): keys that left the set.
    retired: dict[str, tuple[RecordKey, float]]

    def __init__(
        self,
        name: str,
        urls: Sequence[str],
        options: DiscoveryOptions,
        *,
        static: Sequence[RecordKey] = (),
        setting: str = "",
    ) -> None:
        super().__init__(name, urls, options, setting=setting)
        self.static = tuple(static)
        self.listed = ()
        self.retired = {}

    def describe(self, now: float) -> str:
        kids = ", ".join(key.kid[:_SHOWN_KID_LENGTH] for key in self.listed[:_SHOWN_KIDS])
        more = ", ..." if len(self.listed) > _SHOWN_KIDS else ""
        return f"JWK Set lists {len(self.listed)} record key(s): kid {kids}{more}"

    def _take(self, body: bytes, now: float) -> bool:
        listed = RecordKeySet.from_published(body).keys
        before = [(key.kid, key.raw) for key in self.listed]
        after = [(key.kid, key.raw) for key in listed]
        kids = {key.kid for key in listed}
        removed = [(key.kid, key) for key in self.listed if key.kid not in kids]
        self.retired = retire(self.retired, removed, kids, now + self.grace(), now)
        self.listed = listed
        return before != after

    def select(self, now: float) -> tuple[RecordKeySet, float]:
        """The keys that verify this issuer's records at ``now`` (configured, listed, then
        retired ones still in their grace, at most :data:`MAX_JWKS_KEYS`), and the moment
        that answer changes on its own."""
        keys: dict[str, RecordKey] = {}
        for key in (*self.static, *self.listed):
            keys.setdefault(key.kid, key)
        changes: list[float] = []
        for kid, (key, until) in self.retired.items():
            if until > now:
                keys.setdefault(kid, key)
                changes.append(until)
        chosen = tuple(keys.values())[:MAX_JWKS_KEYS]
        return RecordKeySet(chosen), min(changes, default=_NEVER)


__all__ = ["JwksState"]
