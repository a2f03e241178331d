"""A key document fetched over HTTP and kept fresh, without I/O: the part of a discovery state
machine that does not care what the document says.

:class:`ResourceState` turns HTTP answers and failures, each with the time, into a schedule
and a validator; a subclass says what its document is (media type, name in messages, size
bound) and what a good body does to the keys (:meth:`ResourceState._take`). Issuer
directories (:mod:`.directory_state`) and PST record-key JWK Sets (:mod:`.jwks_state`) are
both kept this way, so they are refreshed by the same rules:

* Freshness is ``Cache-Control: max-age`` minus ``Age`` (RFC 9111 §4.2.1; ``no-cache`` and
  ``no-store`` mean none), clamped to ``directory_refresh_min`` .. ``directory_refresh_max``;
  the refresh comes a tenth of the lifetime early, at most :data:`REFRESH_AHEAD_MAX` seconds.
* The ETag goes back as ``If-None-Match``; a 304 renews freshness and keeps the keys. A 304
  to a request that sent no validator is a failure.
* A 404 at a URL with a fallback moves on to the next URL at once (``Refresh.RETRY``).
* A failed fetch, another status, a Content-Type other than the document's media type or
  JSON, or a body the subclass refuses keeps the last good keys; retries back off from
  ``directory_refresh_min`` doubling to ``directory_refresh_max``, from the first URL again.
* A refresh asked for early (an unknown key id was seen) happens at most once per
  ``directory_unknown_key_refresh`` seconds.
* Keys that leave the document stay trusted for a grace period (:func:`retire`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any, ClassVar, TypeVar

from ..errors import DecodeError
from ..settings import DiscoveryOptions
from .fetch import DirectoryRequest, DirectoryResponse, Refresh, RefreshResult, shown_url

#: Keys kept past their removal from a document, at most (the soonest to expire go first).
MAX_RETIRED_KEYS = 16
#: Refresh this share of the freshness lifetime early, but at most REFRESH_AHEAD_MAX seconds.
REFRESH_AHEAD_FRACTION = 0.1
REFRESH_AHEAD_MAX = 300
_MAX_ETAG_LENGTH = 256
_ETAG = re.compile(r'(W/)?"[\x21\x23-\x7e]*"')
_MAX_AGE = re.compile(r'\s*max-age\s*=\s*"?(\d{1,10})"?\s*', re.IGNORECASE)
_JSON_MEDIA_TYPE = re.compile(r"application/(?:[a-z0-9!#$&^_.-][a-z0-9!#$&^_.+-]*\+)?json")
_UNPRINTABLE = re.compile(r"[^\x20-\x7e]")
_MAX_SHOWN_CONTENT_TYPE = 64
_NEVER = math.inf

_K = TypeVar("_K", str, bytes)
_V = TypeVar("_V")


class ResourceState:
    """The fetch schedule of one document: URLs, validator, freshness, failures.

    Not thread-safe: the source that holds it locks. Subclasses set the class attributes,
    keep their keys in :attr:`static`, :attr:`listed` and :attr:`retired`, and implement
    :meth:`_take` and :meth:`describe`.
    """

    #: What the document is called in messages ("the directory came as ...").
    noun: ClassVar[str] = "document"
    #: Its media type; JSON (``application/json``, ``application/*+json``) is accepted too.
    media_type: ClassVar[str] = "application/json"
    #: The most body bytes a fetcher reads.
    max_size: ClassVar[int] = 64 * 1024
    #: What start-up says cannot be fetched ("no token key could be fetched").
    key_noun: ClassVar[str] = "key"
    #: What happens while the keys are missing, for the start-up message.
    without_keys: ClassVar[str] = ""

    #: Configured keys (always trusted), the keys of the last good answer, and the keys
    #: that left it: id -> (key, trusted until). Subclasses narrow the types.
    static: Sequence[object]
    listed: Sequence[object]
    retired: Mapping[Any, tuple[object, float]]

    def __init__(
        self, name: str, urls: Sequence[str], options: DiscoveryOptions, *, setting: str = ""
    ) -> None:
        if not urls:
            raise ValueError(f"a {self.noun} state needs at least one URL")
        self.name = name
        self.urls = tuple(urls)
        self.options = options
        self.setting = setting
        self.etag: str | None = None
        #: The freshness lifetime of the last good answer, clamped to the refresh bounds.
        self.freshness: float = 0.0
        self.next_refresh: float = -_NEVER
        self.failures = 0
        self.last_error: str | None = None
        self._url_index = 0
        self._last_forced = -_NEVER

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.name!r}, listed={len(self.listed)}, "
            f"retired={len(self.retired)}, failures={self.failures})"
        )

    @property
    def url(self) -> str:
        """The URL the next request goes to."""
        return self.urls[self._url_index]

    @property
    def has_keys(self) -> bool:
        return bool(self.static or self.listed or self.retired)

    def key_count(self) -> int:
        """How many keys a failed refresh keeps (for the log line)."""
        return len(self.static) + len(self.listed) + len(self.retired)

    def describe(self, now: float) -> str:
        """One line on the keys after a change (for the log line)."""
        raise NotImplementedError

    def _take(self, body: bytes, now: float) -> bool:
        """Install the keys of a good answer's body; True when they changed. Raises
        :class:`DecodeError` (its message says why) to refuse the body and keep the keys."""
        raise NotImplementedError

    def due(self, now: float) -> bool:
        return now >= self.next_refresh

    def request(self) -> DirectoryRequest:
        headers = [("Accept", f"{self.media_type}, application/json;q=0.5")]
        if self.etag is not None:
            headers.append(("If-None-Match", self.etag))
        return DirectoryRequest(self.url, tuple(headers), max_size=self.max_size, noun=self.noun)

    def request_refresh(self, now: float) -> bool:
        """Make a refresh due now (an unknown key id was seen), at most once per
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
        refused = content_type_problem(headers.get("content-type"), self.media_type, self.noun)
        if refused is not None:
            return self.fail(refused, now)
        try:
            changed = self._take(response.body, now)
        except DecodeError as e:
            return self.fail(str(e), now)
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

    def grace(self) -> float:
        """How long a key that left the document stays trusted: ``directory_key_grace``, or
        longer when the previous answer stayed fresh longer (clients may hold it that long)."""
        return max(self.options.key_grace, self.freshness)


def retire(
    retired: Mapping[_K, tuple[_V, float]],
    removed: Iterable[tuple[_K, _V]],
    listed: Collection[_K],
    until: float,
    now: float,
) -> dict[_K, tuple[_V, float]]:
    """The retired keys after an answer: ``removed`` keys (id, key) trusted until ``until``,
    ids listed again taken out, expired ones dropped, at most :data:`MAX_RETIRED_KEYS` (the
    longest-lived kept)."""
    out = dict(retired)
    for key_id, key in removed:
        out[key_id] = (key, until)
    for key_id in listed:
        out.pop(key_id, None)
    live = sorted(
        ((key_id, entry) for key_id, entry in out.items() if entry[1] > now),
        key=lambda item: (item[1][1], item[0]),
        reverse=True,
    )
    return dict(live[:MAX_RETIRED_KEYS])


def content_type_problem(value: str | None, media_type: str, noun: str) -> str | None:
    """None for ``media_type`` or JSON (``application/json``, ``application/*+json``;
    parameters allowed), else why not: a page that merely parses as the document (an error
    page, a file someone uploaded) is not the issuer's document."""
    if value is None:
        return f"the {noun} came without a Content-Type; expected {media_type}"
    received = value.split(";", 1)[0].strip().lower()
    if received == media_type or _JSON_MEDIA_TYPE.fullmatch(received):
        return None
    shown = _UNPRINTABLE.sub("?", value[:_MAX_SHOWN_CONTENT_TYPE])
    more = "..." if len(value) > _MAX_SHOWN_CONTENT_TYPE else ""
    return f"the {noun} came as Content-Type {shown!r}{more}; expected {media_type} or JSON"


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
    age = int(age_text) if _is_digits(age_text) and len(age_text) <= 10 else 0
    return float(max(0, max_age - age))


def _is_digits(text: str) -> bool:
    """ASCII digits only: ``str.isdigit`` is true for "²" too, which ``int`` refuses."""
    return text.isascii() and text.isdigit()


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
    "MAX_RETIRED_KEYS",
    "REFRESH_AHEAD_FRACTION",
    "REFRESH_AHEAD_MAX",
    "ResourceState",
    "content_type_problem",
    "retire",
]
