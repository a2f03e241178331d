"""Issuer key discovery without I/O: directory answers in, trusted keys out (RFC 9578 §4).

:class:`DirectoryState` is the state machine of one issuer's directory. Give it each HTTP
answer (:meth:`~DirectoryState.receive`) or transport failure (:meth:`~DirectoryState.fail`)
with the time; it keeps the last good keys, the ETag and the time of the next refresh.
:meth:`~DirectoryState.select` says which keys verify tokens at a given moment and which one
challenges advertise. :class:`~pat_middleware.discovery.key_source.KeySource` holds every
issuer's state and runs the fetches; the fetch types live in
:mod:`pat_middleware.discovery.fetch`.

The rules, and why:

* Challenges advertise the first listed key whose ``not-before`` has passed: the key clients
  pick from the same directory (RFC 9578 §4), so issuance under it succeeds. A key whose
  not-before is ahead is never advertised. A static key is advertised only when the
  directory offers no current key.
* Tokens verify under every listed key, current or not yet current. A token can only exist
  under a key the issuer signs with, and the issuer lists it; RFC 9578 §4 lets origins try
  any listed key, which covers clients whose clocks run ahead and pick the next key early.
* A key that leaves the directory stays trusted for ``max(freshness, directory_key_grace)``:
  clients may hold the old directory that long (its max-age) and tokens minted under the key
  are then still being redeemed. Static keys are always trusted.
* A failed fetch, an error status, a Content-Type other than the directory's media type or
  JSON, or a document without one usable key keeps the last good keys; retries back off
  from ``directory_refresh_min`` to ``directory_refresh_max``. These HTTP rules (and
  freshness, ETags, the unknown-key refresh) are :class:`~.resource.ResourceState`'s.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..core.directory import (
    ISSUER_DIRECTORY_MEDIA_TYPE,
    MAX_DIRECTORY_SIZE,
    DirectoryKey,
    parse_directory,
)
from ..core.keys import TokenKey
from ..errors import DecodeError
from ..settings import DiscoveryOptions
from ..settings.model import DEFAULT_TOKEN_TYPES
from ..tokens.registry import default_registry
from .resource import MAX_RETIRED_KEYS, ResourceState, retire

#: Keys taken from one directory, most preferred first; the rest are ignored. Bounds the
#: key ring, which every token lookup walks in constant time.
MAX_LISTED_KEYS = 16
_NEVER = math.inf


@dataclass(frozen=True, slots=True)
class ListedKey:
    """A key as the directory lists it, parsed once."""

    key: TokenKey
    not_before: int | None = None

    def is_current(self, now: float) -> bool:
        return self.not_before is None or self.not_before <= now


@dataclass(frozen=True, slots=True)
class IssuerKeys:
    """One issuer's keys at a moment: the one to advertise (None: do not challenge for this
    issuer) and every key a token may be signed under."""

    name: str
    preferred: TokenKey | None
    accepted: tuple[TokenKey, ...]
    #: The key to advertise per token type (``preferred`` is its first), for an issuer
    #: with keys of several types.
    advertised: tuple[TokenKey, ...] = ()


class DirectoryState(ResourceState):
    """The directory state machine of one issuer. Not thread-safe: :class:`KeySource` locks.

    Fetching, validators, freshness and back-off are :class:`ResourceState`'s; this class
    reads directories and chooses keys."""

    noun = "directory"
    media_type = ISSUER_DIRECTORY_MEDIA_TYPE
    max_size = MAX_DIRECTORY_SIZE
    key_noun = "token key"
    without_keys = "requests are then refused with 503 until keys arrive"
    static: tuple[TokenKey, ...]
    listed: tuple[ListedKey, ...]
    #: token_key_id -> (key, trusted until): keys that left the directory.
    retired: dict[bytes, tuple[TokenKey, float]]

    def __init__(
        self,
        name: str,
        urls: Sequence[str],
        options: DiscoveryOptions,
        *,
        static: Sequence[TokenKey] = (),
        allow_4096: bool = False,
        setting: str = "",
        token_types: frozenset[int] = DEFAULT_TOKEN_TYPES,
    ) -> None:
        super().__init__(name, urls, options, setting=setting)
        self.static = tuple(static)
        self.allow_4096 = allow_4096
        self.token_types = token_types
        self.listed = ()
        self.retired = {}

    def describe(self, now: float) -> str:
        current = next((k for k in self.listed if k.is_current(now)), None)
        preferred = current.key.token_key_id.hex()[:16] if current else "none yet"
        return f"directory lists {len(self.listed)} key(s); preferred key id {preferred}"

    # ---------------------------------------------------------------------- answers

    def _take(self, body: bytes, now: float) -> bool:
        directory = parse_directory(body)
        listed = self._parse_keys(directory.token_keys)
        if not listed:
            types = " or ".join(map(str, sorted(self.token_types)))
            raise DecodeError(f"the directory lists no usable token type {types} key")
        return self._install(listed, now)

    def _parse_keys(self, entries: Sequence[DirectoryKey]) -> tuple[ListedKey, ...]:
        """Keys of the accepted token types in directory order, parsed through the token
        registry (or reused when already known). A type whose tokens only the issuer's
        private key verifies is used when that key is configured (a static key) and the
        entry publishes its public half."""
        known: dict[tuple[int, bytes], TokenKey] = {
            (key.token_type, key.published): key for key in self.static
        }
        known.update(((k.key.token_type, k.key.published), k.key) for k in self.listed)
        known.update(((key.token_type, key.published), key) for key, _ in self.retired.values())
        registry = default_registry()
        out: list[ListedKey] = []
        seen: set[tuple[int, bytes]] = set()
        for entry in entries:
            found = (entry.token_type, entry.token_key)
            if entry.token_type not in self.token_types or found in seen:
                continue
            key = known.get(found)
            if key is None:
                token_type = registry.get(entry.token_type)
                if token_type is None or not token_type.publicly_verifiable:
                    continue  # unknown, or verifiable only with a secret we do not hold
                try:
                    loaded = token_type.load_public_key(entry.token_key, allow_4096=self.allow_4096)
                except DecodeError:
                    continue  # one bad entry does not spoil the others
                if not isinstance(loaded, TokenKey):
                    continue
                key = loaded
            seen.add(found)
            out.append(ListedKey(key, entry.not_before))
            if len(out) == MAX_LISTED_KEYS:
                break
        return tuple(out)

    def _install(self, listed: tuple[ListedKey, ...], now: float) -> bool:
        before = [(k.key.token_key_id, k.not_before) for k in self.listed]
        after = [(k.key.token_key_id, k.not_before) for k in listed]
        ids = {key_id for key_id, _ in after}
        removed = [
            (k.key.token_key_id, k.key) for k in self.listed if k.key.token_key_id not in ids
        ]
        self.retired = retire(self.retired, removed, ids, now + self.grace(), now)
        self.listed = listed
        return before != after

    # -------------------------------------------------------------------- selection

    def select(self, now: float) -> tuple[IssuerKeys, float]:
        """The issuer's keys at ``now`` and the moment that answer changes on its own."""
        # Per token type, the first current listed key, else the first static one.
        advertised = first_per_type(
            [*(k.key for k in self.listed if k.is_current(now)), *self.static]
        )
        preferred = advertised[0] if advertised else None
        accepted: dict[bytes, TokenKey] = {}
        for key in self.static:
            accepted.setdefault(key.token_key_id, key)
        for listed in self.listed:
            accepted.setdefault(listed.key.token_key_id, listed.key)
        changes: list[float] = [k.not_before for k in self.listed if k.not_before is not None]
        for key_id, (key, until) in self.retired.items():
            if until > now:
                accepted.setdefault(key_id, key)
                changes.append(until)
        upcoming = [moment for moment in changes if moment > now]
        keys = IssuerKeys(self.name, preferred, tuple(accepted.values()), advertised)
        return keys, min(upcoming, default=_NEVER)


def first_per_type(keys: Iterable[TokenKey]) -> tuple[TokenKey, ...]:
    """The first key of each token type, in the order the types first appear."""
    first: dict[int, TokenKey] = {}
    for key in keys:
        first.setdefault(key.token_type, key)
    return tuple(first.values())


__all__ = [
    "MAX_LISTED_KEYS",
    "MAX_RETIRED_KEYS",
    "DirectoryState",
    "IssuerKeys",
    "ListedKey",
    "first_per_type",
]
