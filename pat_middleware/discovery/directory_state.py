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
  from ``directory_refresh_min`` to ``directory_refresh_max``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..core.directory import (
    ISSUER_DIRECTORY_MEDIA_TYPE,
    DirectoryKey,
    parse_directory,
)
from ..core.wire import TOKEN_TYPE_BLIND_RSA
from ..errors import DecodeError
from ..settings import DiscoveryOptions
from ..tokens.blind_rsa import IssuerKey
from .fetch import DirectoryRequest, DirectoryResponse, Refresh, RefreshResult, shown_url

#: Keys taken from one directory, most preferred first; the rest are ignored. Bounds the
#: key ring, which every token lookup walks in constant time.
MAX_LISTED_KEYS = 16
#: Keys kept past their removal from the directory, at most (the soonest to expire go first).
MAX_RETIRED_KEYS = 16
#: Refresh this share of the freshness lifetime early, but at most REFRESH_AHEAD_MAX seconds.
REFRESH_AHEAD_FRACTION = 0.1
REFRESH_AHEAD_MAX = 300
_MAX_ETAG_LENGTH = 256
_ETAG = re.compile(r'(W/)?"[\x21\x23-\x7e]*"')
_MAX_AGE = re.compile(r'\s*max-age\s*=\s*"?(\d{1,10})"?\s*', re.IGNORECASE)
_ACCEPT = f"{ISSUER_DIRECTORY_MEDIA_TYPE}, application/json;q=0.5"
_JSON_MEDIA_TYPE = re.compile(r"application/(?:[a-z0-9!#$&^_.-][a-z0-9!#$&^_.+-]*\+)?json")
_UNPRINTABLE = re.compile(r"[^\x20-\x7e]")
_MAX_SHOWN_CONTENT_TYPE = 64
_NEVER = math.inf


@dataclass(frozen=True, slots=True)
class ListedKey:
    """A key as the directory lists it, parsed once."""

    key: IssuerKey
    not_before: int | None = None

    def is_current(self, now: float) -> bool:
        return self.not_before is None or self.not_before <= now


@dataclass(frozen=True, slots=True)
class IssuerKeys:
    """One issuer's keys at a moment: the one to advertise (None: do not challenge for this
    issuer) and every key a token may be signed under."""

    name: str
    preferred: IssuerKey | None
    accepted: tuple[IssuerKey, ...]


class DirectoryState:
    """The directory state machine of one issuer. Not thread-safe: :class:`KeySource` locks."""

    def __init__(
        self,
        name: str,
        urls: Sequence[str],
        options: DiscoveryOptions,
        *,
        static: Sequence[IssuerKey] = (),
        allow_4096: bool = False,
        setting: str = "",
    ) -> None:
        if not urls:
            raise ValueError("a directory state needs at least one URL")
        self.name = name
        self.urls = tuple(urls)
        self.options = options
        self.static = tuple(static)
        self.allow_4096 = allow_4096
        self.setting = setting
        self.etag: str | None = None
        self.listed: tuple[ListedKey, ...] = ()
        #: token_key_id -> (key, trusted until): keys that left the directory.
        self.retired: dict[bytes, tuple[IssuerKey, float]] = {}
        #: The freshness lifetime of the last good answer, clamped to the refresh bounds.
        self.freshness: float = 0.0
        self.next_refresh: float = -_NEVER
        self.failures = 0
        self.last_error: str | None = None
        self._url_index = 0
        self._last_forced = -_NEVER

    def __repr__(self) -> str:
        return (
            f"DirectoryState({self.name!r}, listed={len(self.listed)}, "
            f"retired={len(self.retired)}, failures={self.failures})"
        )

    @property
    def url(self) -> str:
        """The URL the next request goes to."""
        return self.urls[self._url_index]

    @property
    def has_keys(self) -> bool:
        return bool(self.static or self.listed or self.retired)

    def due(self, now: float) -> bool:
        return now >= self.next_refresh

    def request(self) -> DirectoryRequest:
        headers = [("Accept", _ACCEPT)]
        if self.etag is not None:
            headers.append(("If-None-Match", self.etag))
        return DirectoryRequest(self.url, tuple(headers))

    def request_refresh(self, now: float) -> bool:
        """Make a refresh due now (a token named an unknown key), at most once per
        ``directory_unknown_key_refresh`` seconds. True when it did."""
        if now - self._last_forced < self.options.unknown_key_refresh:
            return False
        self._last_forced = now
        self.next_refresh = min(self.next_refresh, now)
        return True

    # ---------------------------------------------------------------------- answers

    def receive(self, response: DirectoryResponse, now: float) -> RefreshResult:
        headers = {name.lower(): value for name, value in response.headers.items()}
        status = response.status
        if status == 404 and self._url_index + 1 < len(self.urls):
            self._url_index += 1
            self.etag = None  # a validator belongs to the URL that sent it
            return RefreshResult(
                Refresh.RETRY, f"HTTP 404 at {shown_url(self.urls[self._url_index - 1])}"
            )
        if status == 304:
            if self.etag is None:
                return self.fail("HTTP 304 to a request without If-None-Match", now)
            self._succeeded(headers, now)
            return RefreshResult(Refresh.NOT_MODIFIED)
        if status != 200:
            return self.fail(f"HTTP {status}", now)
        refused = _content_type_problem(headers.get("content-type"))
        if refused is not None:
            return self.fail(refused, now)
        try:
            directory = parse_directory(response.body)
        except DecodeError as e:
            return self.fail(str(e), now)
        listed = self._parse_keys(directory.token_keys)
        if not listed:
            return self.fail("the directory lists no usable token type 2 key", now)
        changed = self._install(listed, now)
        self.etag = _etag(headers.get("etag"))
        self._succeeded(headers, now)
        return RefreshResult(Refresh.CHANGED if changed else Refresh.UNCHANGED)

    def fail(self, detail: str, now: float) -> RefreshResult:
        """A failed refresh: keep the keys, back off, start again from the first URL."""
        self.failures += 1
        self.last_error = detail
        backoff = self.options.refresh_min * 2 ** min(self.failures - 1, 20)
        self.next_refresh = now + min(self.options.refresh_max, backoff)
        if self._url_index:
            self._url_index = 0
            self.etag = None
        return RefreshResult(Refresh.FAILED, detail)

    def _succeeded(self, headers: Mapping[str, str], now: float) -> None:
        self.failures = 0
        self.last_error = None
        lifetime = _freshness_lifetime(headers)
        low, high = self.options.refresh_min, self.options.refresh_max
        self.freshness = _clamp(lifetime, low, high)
        early = min(lifetime * REFRESH_AHEAD_FRACTION, REFRESH_AHEAD_MAX)
        self.next_refresh = now + _clamp(lifetime - early, low, high)

    def _parse_keys(self, entries: Sequence[DirectoryKey]) -> tuple[ListedKey, ...]:
        """Type-2 keys in directory order, parsed (or reused when already known)."""
        known = {k.key.spki: k.key for k in self.listed}
        known.update((key.spki, key) for key, _ in self.retired.values())
        out: list[ListedKey] = []
        seen: set[bytes] = set()
        for entry in entries:
            raw = entry.token_key
            if entry.token_type != TOKEN_TYPE_BLIND_RSA or raw in seen:
                continue
            key = known.get(raw)
            if key is None:
                try:
                    key = IssuerKey.from_spki(raw, allow_4096=self.allow_4096)
                except DecodeError:
                    continue  # one bad entry does not spoil the others
            seen.add(raw)
            out.append(ListedKey(key, entry.not_before))
            if len(out) == MAX_LISTED_KEYS:
                break
        return tuple(out)

    def _install(self, listed: tuple[ListedKey, ...], now: float) -> bool:
        before = [(k.key.token_key_id, k.not_before) for k in self.listed]
        after = [(k.key.token_key_id, k.not_before) for k in listed]
        changed = before != after
        ids = {key_id for key_id, _ in after}
        grace = max(self.options.key_grace, self.freshness)
        for old in self.listed:
            if old.key.token_key_id not in ids:
                self.retired[old.key.token_key_id] = (old.key, now + grace)
        for key_id in ids:
            self.retired.pop(key_id, None)
        self._prune(now)
        self.listed = listed
        return changed

    def _prune(self, now: float) -> None:
        live = sorted(
            ((until, key_id, key) for key_id, (key, until) in self.retired.items() if until > now),
            reverse=True,
        )[:MAX_RETIRED_KEYS]
        self.retired = {key_id: (key, until) for until, key_id, key in live}

    # -------------------------------------------------------------------- selection

    def select(self, now: float) -> tuple[IssuerKeys, float]:
        """The issuer's keys at ``now`` and the moment that answer changes on its own."""
        preferred = next((k.key for k in self.listed if k.is_current(now)), None)
        if preferred is None and self.static:
            preferred = self.static[0]
        accepted: dict[bytes, IssuerKey] = {}
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
        keys = IssuerKeys(self.name, preferred, tuple(accepted.values()))
        return keys, min(upcoming, default=_NEVER)


def _content_type_problem(value: str | None) -> str | None:
    """None for a directory's media type or JSON (``application/json``, ``application/*+json``;
    parameters allowed), else why not: a page that merely parses as a directory (an error
    page, a file someone uploaded) is not the issuer's directory."""
    if value is None:
        return f"the directory came without a Content-Type; expected {ISSUER_DIRECTORY_MEDIA_TYPE}"
    media_type = value.split(";", 1)[0].strip().lower()
    if media_type == ISSUER_DIRECTORY_MEDIA_TYPE or _JSON_MEDIA_TYPE.fullmatch(media_type):
        return None
    shown = _UNPRINTABLE.sub("?", value[:_MAX_SHOWN_CONTENT_TYPE])
    more = "..." if len(value) > _MAX_SHOWN_CONTENT_TYPE else ""
    return (
        f"the directory came as Content-Type {shown!r}{more}; expected "
        f"{ISSUER_DIRECTORY_MEDIA_TYPE} or JSON"
    )


def _freshness_lifetime(headers: Mapping[str, str]) -> float:
    """Seconds the answer stays fresh (RFC 9111 §4.2.1): max-age minus Age; no max-age, or
    no-cache / no-store, means none."""
    value = headers.get("cache-control", "")
    max_age: int | None = None
    for directive in value.split(","):
        name = directive.strip().lower()
        if name in ("no-cache", "no-store"):
            return 0.0
        match = _MAX_AGE.fullmatch(directive)
        if match and max_age is None:
            max_age = int(match.group(1))
    if max_age is None:
        return 0.0
    age_text = headers.get("age", "").strip()
    age = int(age_text) if age_text.isdigit() and len(age_text) <= 10 else 0
    return float(max(0, max_age - age))


def _etag(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if len(value) > _MAX_ETAG_LENGTH or not _ETAG.fullmatch(value):
        return None
    return value


def _clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))


__all__ = [
    "MAX_LISTED_KEYS",
    "MAX_RETIRED_KEYS",
    "DirectoryState",
    "IssuerKeys",
    "ListedKey",
]
