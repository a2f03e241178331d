"""The directory state machine and the key source, driven with bytes and times alone."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import json
import logging
import math
import socket
import sys
import threading
import time
from collections.abc import Mapping
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import example, given
from hypothesis import strategies as st

from pat_middleware.core.codec import b64url_encode
from pat_middleware.core.keys import TokenKey
from pat_middleware.discovery import (
    MAX_LISTED_KEYS,
    DirectoryFetchError,
    DirectoryRequest,
    DirectoryResponse,
    DirectoryState,
    KeySource,
    Refresh,
    RefreshHooks,
)
from pat_middleware.discovery.fetch import shown_url
from pat_middleware.errors import ConfigurationError
from pat_middleware.issuer import DirectoryKey, IssuerDirectory
from pat_middleware.policy import Policy
from pat_middleware.settings import DiscoveryOptions, IssuerConfig, Settings
from pat_middleware.tokens.blind_rsa import IssuerKey, encode_pss_spki

from ._directory_server import directory_server, document

T0 = 1_700_000_000.0
RFC_URL = "https://issuer.example/.well-known/private-token-issuer-directory"
LEGACY_URL = "https://issuer.example/.well-known/token-issuer-directory"
OPTIONS = DiscoveryOptions(refresh_min=60, refresh_max=3600, unknown_key_refresh=30, key_grace=600)
MEDIA_TYPE = "application/private-token-issuer-directory"
JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def key_a(rsa_2048: rsa.RSAPrivateKey) -> IssuerKey:
    return IssuerKey.from_spki(encode_pss_spki(rsa_2048.public_key()))


@pytest.fixture(scope="module")
def key_b(other_rsa_2048: rsa.RSAPrivateKey) -> IssuerKey:
    return IssuerKey.from_spki(encode_pss_spki(other_rsa_2048.public_key()))


@pytest.fixture(scope="module")
def key_c() -> IssuerKey:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return IssuerKey.from_spki(encode_pss_spki(private.public_key()))


def directory(*keys: tuple[IssuerKey, int | None]) -> bytes:
    entries = tuple(DirectoryKey(2, key.spki, not_before) for key, not_before in keys)
    return IssuerDirectory("/token-request", entries).to_bytes()


def ok(
    body: bytes, cache_control: str | None = "max-age=1000", **headers: str
) -> DirectoryResponse:
    out = {"Content-Type": MEDIA_TYPE}
    out.update((name.replace("_", "-"), value) for name, value in headers.items())
    if cache_control is not None:
        out["Cache-Control"] = cache_control
    return DirectoryResponse(200, out, body)


def state(*urls: str, static: tuple[IssuerKey, ...] = (), **options: Any) -> DirectoryState:
    opts = dataclasses.replace(OPTIONS, **options)
    return DirectoryState("issuer.example", urls or (RFC_URL,), opts, static=static)


def accepted(s: DirectoryState, now: float) -> set[bytes]:
    return {k.token_key_id for k in s.select(now)[0].accepted}


def preferred(s: DirectoryState, now: float) -> TokenKey | None:
    return s.select(now)[0].preferred


# ------------------------------------------------------------------------- freshness


@pytest.mark.parametrize(
    ("headers", "delay"),
    [
        ({"Cache-Control": "max-age=1000"}, 900),  # 10 % early
        ({"Cache-Control": 'public, max-age="1000"'}, 900),
        ({"Cache-Control": "max-age=1000", "Age": "400"}, 540),  # RFC 9111: minus Age
        ({"Cache-Control": "max-age=10"}, 60),  # clamped up to directory_refresh_min
        ({"Cache-Control": "max-age=1000000"}, 3600),  # clamped down to the maximum
        ({"Cache-Control": "max-age=86400"}, 3600),
        ({"Cache-Control": "no-cache, max-age=1000"}, 60),
        ({"Cache-Control": "no-store"}, 60),
        ({"Cache-Control": "max-age=abc"}, 60),
        ({}, 60),  # no freshness information: revalidate as soon as allowed
    ],
)
def test_next_refresh_honours_max_age_within_bounds(
    key_a: IssuerKey, headers: Mapping[str, str], delay: int
) -> None:
    s = state()
    headers = {**headers, "Content-Type": MEDIA_TYPE}
    result = s.receive(DirectoryResponse(200, headers, directory((key_a, None))), T0)
    assert result.outcome is Refresh.CHANGED
    assert s.next_refresh == T0 + delay
    assert not s.due(T0 + delay - 1) and s.due(T0 + delay)


def test_refresh_ahead_is_capped(key_a: IssuerKey) -> None:
    s = state(refresh_max=86400)
    s.receive(ok(directory((key_a, None)), "max-age=86400"), T0)
    assert s.next_refresh == T0 + 86400 - 300


def test_a_new_state_is_due_at_once() -> None:
    assert state().due(-1e18)


# -------------------------------------------------------------------------- ETag, 304


def test_etag_is_sent_back_and_304_keeps_the_keys(key_a: IssuerKey) -> None:
    s = state()
    assert dict(s.request().headers) == {
        "Accept": "application/private-token-issuer-directory, application/json;q=0.5"
    }
    s.receive(ok(directory((key_a, None)), ETag='"v1"'), T0)
    assert dict(s.request().headers)["If-None-Match"] == '"v1"'

    result = s.receive(DirectoryResponse(304, {"cache-control": "max-age=200"}), T0 + 900)
    assert result.outcome is Refresh.NOT_MODIFIED
    assert accepted(s, T0 + 900) == {key_a.token_key_id}
    assert s.next_refresh == T0 + 900 + 180
    assert dict(s.request().headers)["If-None-Match"] == '"v1"'


def test_weak_etag_is_kept_and_garbage_etag_ignored(key_a: IssuerKey) -> None:
    s = state()
    s.receive(ok(directory((key_a, None)), ETag='W/"x1"'), T0)
    assert dict(s.request().headers)["If-None-Match"] == 'W/"x1"'
    s.receive(ok(directory((key_a, None)), ETag="no quotes"), T0)
    assert "If-None-Match" not in dict(s.request().headers)


def test_304_without_a_validator_is_a_failure(key_a: IssuerKey) -> None:
    s = state()
    s.receive(ok(directory((key_a, None))), T0)
    result = s.receive(DirectoryResponse(304, {}), T0 + 900)
    assert result.outcome is Refresh.FAILED and "304" in result.detail
    assert accepted(s, T0 + 900) == {key_a.token_key_id}


def test_same_keys_again_are_unchanged_but_a_new_not_before_is_a_change(
    key_a: IssuerKey, key_b: IssuerKey
) -> None:
    s = state()
    body = directory((key_b, int(T0) + 100), (key_a, None))
    assert s.receive(ok(body), T0).outcome is Refresh.CHANGED
    assert s.receive(ok(body), T0 + 1).outcome is Refresh.UNCHANGED
    moved = directory((key_b, int(T0) + 200), (key_a, None))
    assert s.receive(ok(moved), T0 + 2).outcome is Refresh.CHANGED


def test_known_keys_are_not_parsed_again(key_a: IssuerKey) -> None:
    s = state()
    s.receive(ok(directory((key_a, None))), T0)
    first = s.listed[0].key
    s.receive(ok(directory((key_a, None))), T0 + 1)
    assert s.listed[0].key is first


# ------------------------------------------------------------------------ not-before


@pytest.mark.parametrize("scale", [1, 1000], ids=["seconds", "milliseconds"])
def test_preferred_key_switches_at_not_before(
    key_a: IssuerKey, key_b: IssuerKey, scale: int
) -> None:
    switch = int(T0) + 100
    s = state()
    s.receive(ok(directory((key_b, switch * scale), (key_a, None))), T0)

    keys, until = s.select(T0)
    assert keys.preferred == key_a  # key_b is listed first but not yet valid
    assert {k.token_key_id for k in keys.accepted} == {key_a.token_key_id, key_b.token_key_id}
    assert until == switch
    assert preferred(s, switch - 0.001) == key_a
    keys, until = s.select(switch)
    assert keys.preferred == key_b and until == float("inf")


def test_first_current_key_in_directory_order_is_preferred(
    key_a: IssuerKey, key_b: IssuerKey, key_c: IssuerKey
) -> None:
    s = state()
    s.receive(ok(directory((key_c, int(T0) + 50), (key_b, int(T0) - 50), (key_a, None))), T0)
    assert preferred(s, T0) == key_b  # not the newest not-before, the first current one


def test_only_future_keys_advertise_nothing(key_a: IssuerKey) -> None:
    s = state()
    s.receive(ok(directory((key_a, int(T0) + 50))), T0)
    keys, until = s.select(T0)
    assert keys.preferred is None
    assert [k.token_key_id for k in keys.accepted] == [key_a.token_key_id]
    assert until == T0 + 50


def test_static_key_is_advertised_only_without_a_current_directory_key(
    key_a: IssuerKey, key_b: IssuerKey
) -> None:
    s = state(static=(key_a,))
    assert preferred(s, T0) == key_a and s.has_keys  # before any fetch
    s.receive(ok(directory((key_b, int(T0) + 50))), T0)
    assert preferred(s, T0) == key_a
    assert preferred(s, T0 + 50) == key_b
    s.receive(ok(directory((key_b, None))), T0 + 60)
    assert accepted(s, T0 + 10_000) == {key_a.token_key_id, key_b.token_key_id}  # always


def test_unusable_entries_are_skipped(key_a: IssuerKey, rsa_2048: rsa.RSAPrivateKey) -> None:
    plain = rsa_2048.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    body = json.dumps(
        {
            "issuer-request-uri": "/token-request",
            "token-keys": [
                {"token-type": 1, "token-key": b64url_encode(b"\x02" * 49)},
                {"token-type": 2, "token-key": b64url_encode(plain)},  # rsaEncryption SPKI
                {"token-type": 2, "token-key": "!!"},
                {"token-type": 2, "token-key": b64url_encode(key_a.spki), "not-before": "x"},
                {"token-type": 2, "token-key": b64url_encode(key_a.spki).rstrip("=")},
                {"token-type": 2, "token-key": b64url_encode(key_a.spki)},  # duplicate
            ],
        }
    ).encode()
    s = state()
    assert s.receive(ok(body), T0).outcome is Refresh.CHANGED
    assert [k.key for k in s.listed] == [key_a]


def test_4096_bit_keys_are_taken_only_with_allow_4096(
    key_a: IssuerKey, rsa_4096: rsa.RSAPrivateKey
) -> None:
    big = IssuerKey.from_spki(encode_pss_spki(rsa_4096.public_key()), allow_4096=True)
    body = directory((big, None), (key_a, None))
    for allow, expected in ((False, [key_a]), (True, [big, key_a])):
        s = DirectoryState("issuer.example", (RFC_URL,), OPTIONS, allow_4096=allow)
        assert s.receive(ok(body), T0).outcome is Refresh.CHANGED
        assert [k.key for k in s.listed] == expected


def test_at_most_16_keys_are_taken_in_directory_order() -> None:
    # Distinct valid-looking moduli are enough to load a public key, and cheap to make.
    keys = [
        IssuerKey.from_spki(
            encode_pss_spki(rsa.RSAPublicNumbers(65537, (1 << 2047) | (2 * i + 1)).public_key())
        )
        for i in range(MAX_LISTED_KEYS + 4)
    ]
    s = state()
    assert s.receive(ok(directory(*((k, None) for k in keys))), T0).outcome is Refresh.CHANGED
    assert [k.key for k in s.listed] == keys[:MAX_LISTED_KEYS]


# --------------------------------------------------------------- failures keep keys


@pytest.mark.parametrize(
    ("response", "detail"),
    [
        (DirectoryResponse(500, {}), "HTTP 500"),
        (DirectoryResponse(403, {}), "HTTP 403"),
        (DirectoryResponse(404, {}), "HTTP 404"),
        (DirectoryResponse(200, JSON, b"<html>down for maintenance</html>"), "not valid JSON"),
        (DirectoryResponse(200, JSON, b'{"token-keys": []}'), "issuer-request-uri"),
        (DirectoryResponse(200, JSON, b"[1, 2]"), "not a JSON object"),
        (
            DirectoryResponse(200, JSON, b'{"issuer-request-uri": "/t", "token-keys": []}'),
            "no usable token type 2 key",
        ),
        (DirectoryResponse(200, JSON, b" " * 70_000), "longer than"),
    ],
)
def test_bad_answers_keep_the_last_good_keys(
    key_a: IssuerKey, key_b: IssuerKey, response: DirectoryResponse, detail: str
) -> None:
    s = state()
    s.receive(ok(directory((key_b, int(T0) + 100), (key_a, None)), ETag='"v1"'), T0)
    before = s.select(T0 + 900)

    result = s.receive(response, T0 + 900)
    assert result.outcome is Refresh.FAILED
    assert detail in result.detail and s.last_error == result.detail
    assert s.select(T0 + 900) == before
    assert s.etag == '"v1"'  # a later 304 still works


@pytest.mark.parametrize(
    "content_type",
    [
        MEDIA_TYPE,
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON;Charset=UTF-8",
        "application/private-token-issuer-directory; charset=utf-8",
        "application/vnd.example.directory+json",
    ],
)
def test_directory_media_type_and_json_are_accepted(key_a: IssuerKey, content_type: str) -> None:
    s = state()
    result = s.receive(ok(directory((key_a, None)), Content_Type=content_type), T0)
    assert result.outcome is Refresh.CHANGED
    assert accepted(s, T0) == {key_a.token_key_id}


@pytest.mark.parametrize(
    ("content_type", "shown"),
    [
        ("text/html", "'text/html'"),
        ("text/html; charset=utf-8", "'text/html; charset=utf-8'"),
        ("text/plain", "'text/plain'"),
        ("text/json", "'text/json'"),
        ("application/jsonp", "'application/jsonp'"),
        ("application/octet-stream", "'application/octet-stream'"),
        ("text/html\r\n\x1b[2Jfake line\u2028" + "x" * 100, "'text/html???[2Jfake line?xx"),
        (None, "without a Content-Type"),
    ],
)
def test_other_content_types_are_refused_and_keep_the_keys(
    key_a: IssuerKey, key_b: IssuerKey, content_type: str | None, shown: str
) -> None:
    """A document that parses as a directory but is served as a page (an error page, an
    upload) is not the issuer's directory: the fetch fails, the last good keys stay."""
    s = state()
    s.receive(ok(directory((key_a, None))), T0)
    headers = {"Cache-Control": "max-age=1000"}
    if content_type is not None:
        headers["Content-Type"] = content_type
    result = s.receive(DirectoryResponse(200, headers, directory((key_b, None))), T0 + 900)
    assert result.outcome is Refresh.FAILED
    assert shown in result.detail and MEDIA_TYPE in result.detail
    assert len(result.detail) < 200 and result.detail.isprintable()
    assert accepted(s, T0 + 900) == {key_a.token_key_id}


def test_failures_back_off_and_success_resets(key_a: IssuerKey) -> None:
    s = state(refresh_min=10, refresh_max=100)
    delays = []
    for i in range(6):
        s.fail("connection refused", T0 + i)
        delays.append(s.next_refresh - (T0 + i))
    assert delays == [10, 20, 40, 80, 100, 100]
    s.receive(ok(directory((key_a, None)), "max-age=50"), T0 + 10)
    assert (s.failures, s.last_error) == (0, None)
    assert s.next_refresh == T0 + 10 + 45
    s.fail("timeout", T0 + 60)
    assert s.next_refresh == T0 + 70


def test_404_falls_back_to_the_legacy_path_and_stays_there(key_a: IssuerKey) -> None:
    s = state(RFC_URL, LEGACY_URL)
    assert s.request().url == RFC_URL
    result = s.receive(DirectoryResponse(404, {}), T0)
    assert result.outcome is Refresh.RETRY
    assert s.request().url == LEGACY_URL
    s.receive(ok(directory((key_a, None)), ETag='"l1"'), T0)
    assert s.request().url == LEGACY_URL
    assert dict(s.request().headers)["If-None-Match"] == '"l1"'
    # A failure there starts again from the RFC path, without the legacy path's validator.
    assert s.receive(DirectoryResponse(503, {}), T0 + 900).outcome is Refresh.FAILED
    assert s.request().url == RFC_URL and s.etag is None
    assert accepted(s, T0 + 900) == {key_a.token_key_id}


def test_404_at_the_last_url_is_a_failure() -> None:
    s = state(RFC_URL, LEGACY_URL)
    s.receive(DirectoryResponse(404, {}), T0)
    assert s.receive(DirectoryResponse(404, {}), T0).outcome is Refresh.FAILED
    assert not s.has_keys


# ------------------------------------------------------------------- removed keys


def test_removed_key_is_trusted_for_the_grace_period(key_a: IssuerKey, key_b: IssuerKey) -> None:
    s = state()
    s.receive(ok(directory((key_b, int(T0) + 100), (key_a, None))), T0)
    removed_at = T0 + 900
    assert s.receive(ok(directory((key_b, int(T0) + 100))), removed_at).outcome is (Refresh.CHANGED)
    grace = 1000  # max(directory_key_grace 600, the max-age clients may have cached)
    keys, until = s.select(removed_at)
    assert keys.preferred == key_b
    assert key_a in keys.accepted
    assert until == removed_at + grace
    assert key_a.token_key_id in accepted(s, removed_at + grace - 0.001)
    assert accepted(s, removed_at + grace) == {key_b.token_key_id}


def test_grace_setting_wins_over_a_short_max_age(key_a: IssuerKey, key_b: IssuerKey) -> None:
    s = state()
    s.receive(ok(directory((key_a, None)), "max-age=60"), T0)
    s.receive(ok(directory((key_b, None)), "max-age=60"), T0 + 60)
    assert s.select(T0 + 60)[1] == T0 + 60 + 600


def test_a_key_that_comes_back_is_listed_again(key_a: IssuerKey, key_b: IssuerKey) -> None:
    s = state()
    s.receive(ok(directory((key_a, None))), T0)
    s.receive(ok(directory((key_b, None))), T0 + 1)
    s.receive(ok(directory((key_b, None), (key_a, None))), T0 + 2)
    assert s.retired == {}
    assert accepted(s, T0 + 10**6) == {key_a.token_key_id, key_b.token_key_id}


def test_a_failure_does_not_retire_keys(key_a: IssuerKey) -> None:
    s = state()
    s.receive(ok(directory((key_a, None))), T0)
    for i in range(5):
        s.fail("down", T0 + 10**6 * i)
    assert preferred(s, T0 + 10**7) == key_a


# ------------------------------------------------------------ unknown-key refresh


def test_unknown_key_refresh_is_rate_limited(key_a: IssuerKey) -> None:
    s = state()
    s.receive(ok(directory((key_a, None))), T0)
    assert not s.due(T0 + 1)
    assert s.request_refresh(T0 + 1) and s.due(T0 + 1)
    s.receive(ok(directory((key_a, None))), T0 + 1)
    assert not s.request_refresh(T0 + 30) and not s.due(T0 + 30)
    assert s.request_refresh(T0 + 31) and s.due(T0 + 31)


# ------------------------------------------------------------------- the key source


class Scripted:
    """A fetcher answering from a script, recording each request."""

    def __init__(self, *answers: DirectoryResponse | DirectoryFetchError) -> None:
        self.answers = list(answers)
        self.requests: list[DirectoryRequest] = []

    async def __call__(self, request: DirectoryRequest) -> DirectoryResponse:
        self.requests.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, DirectoryFetchError):
            raise answer
        return answer


class Hooks(RefreshHooks):
    def __init__(self) -> None:
        self.woken = 0

    def wake(self) -> None:
        self.woken += 1


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def source(
    key_a: IssuerKey, clock: Clock, *, require_keys: bool = True
) -> tuple[KeySource, Scripted]:
    issuers = [
        IssuerConfig("static.example", (key_a,)),
        IssuerConfig(
            "issuer.example",
            (),
            directory_urls=(RFC_URL, LEGACY_URL),
            directory_setting="issuers[1].discover",
        ),
    ]
    options = dataclasses.replace(OPTIONS, require_keys=require_keys)
    src = KeySource(issuers, options, clock=clock)
    fetcher = Scripted()
    src.fetcher = fetcher
    return src, fetcher


def test_source_refreshes_what_is_due_and_versions_changes(
    key_a: IssuerKey, key_b: IssuerKey
) -> None:
    clock = Clock()
    src, fetcher = source(key_a, clock)
    fetcher.answers = [
        DirectoryResponse(404, {}),
        ok(directory((key_b, None)), ETag='"1"'),
    ]
    assert src.refresh() == 900
    assert [r.url for r in fetcher.requests] == [RFC_URL, LEGACY_URL]
    assert src.version == 1
    selection = src.select(clock.now)
    assert [(i.name, i.preferred) for i in selection.issuers] == [
        ("static.example", key_a),
        ("issuer.example", key_b),
    ]
    assert selection.version == 1

    clock.now += 899
    assert src.refresh() == 1 and len(fetcher.requests) == 2  # nothing due yet
    clock.now += 1
    fetcher.answers = [DirectoryResponse(304, {"Cache-Control": "max-age=1000"})]
    src.refresh()
    assert fetcher.requests[-1].url == LEGACY_URL
    assert src.version == 1  # a 304 changes nothing


def test_source_unknown_key_wakes_the_refresher_at_most_once_per_interval(
    key_a: IssuerKey,
) -> None:
    clock = Clock()
    src, _ = source(key_a, clock)
    hooks = Hooks()
    src.hooks = hooks
    for _ in range(5):
        src.key_missing(clock.now)
    assert hooks.woken == 1
    clock.now += 30
    src.key_missing(clock.now)
    assert hooks.woken == 2


def test_source_without_keys_names_the_setting(key_a: IssuerKey) -> None:
    clock = Clock()
    src, fetcher = source(key_a, clock)
    fetcher.answers = [DirectoryFetchError("ConnectError: refused")]
    src.refresh(force=True)
    with pytest.raises(ConfigurationError) as info:
        src.check_start_up()
    assert info.value.setting == "issuers[1].discover"
    assert "ConnectError: refused" in info.value.message
    assert "directory_require_keys = false" in info.value.message


def test_source_may_start_without_keys(key_a: IssuerKey, caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    src, fetcher = source(key_a, clock, require_keys=False)
    fetcher.answers = [DirectoryResponse(500, {})]
    with caplog.at_level(logging.WARNING, logger="pat_middleware"):
        src.refresh(force=True)
        src.check_start_up()
    [failed, starting] = caplog.records
    assert "HTTP 500" in failed.getMessage() and failed.exc_info is None
    assert "starting without its keys" in starting.getMessage()
    issuer = src.select(clock.now).issuers[1]
    assert (issuer.preferred, issuer.accepted) == (None, ())


def test_failure_is_logged_in_one_line_without_key_material(
    key_a: IssuerKey, key_b: IssuerKey, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    src, fetcher = source(key_a, clock)
    fetcher.answers = [ok(directory((key_b, None)))]
    src.refresh(force=True)
    fetcher.answers = [DirectoryFetchError("ReadTimeout: timed out")]
    with caplog.at_level(logging.INFO, logger="pat_middleware"):
        src.refresh(force=True)
    [record] = caplog.records
    message = record.getMessage()
    assert record.levelno == logging.WARNING and record.exc_info is None
    assert message == (
        f"issuer issuer.example: directory refresh from {RFC_URL} failed: "
        "ReadTimeout: timed out; keeping 1 key(s), next try in 60 s"
    )
    assert b64url_encode(key_b.spki)[:40] not in message
    assert src.select(clock.now).issuers[1].preferred == key_b


# ------------------------------------------------ deadlines, each issuer on its own

HANG = object()  # an answer that never comes


class Routed:
    """A fetcher answering each URL from its own script; HANG waits until cancelled."""

    def __init__(self, script: dict[str, list[object]]) -> None:
        self.script = script
        self.requests: list[str] = []
        self.cancelled: list[str] = []

    async def __call__(self, request: DirectoryRequest) -> DirectoryResponse:
        self.requests.append(request.url)
        answer = self.script[request.url].pop(0)
        if answer is HANG:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.cancelled.append(request.url)
                raise
        if isinstance(answer, BaseException):
            raise answer
        assert isinstance(answer, DirectoryResponse)
        return answer


def sources(*names: str, timeout: float = 0.3) -> KeySource:
    issuers = [
        IssuerConfig(name, (), directory_urls=(f"https://{name}/d",), directory_setting=name)
        for name in names
    ]
    return KeySource(issuers, dataclasses.replace(OPTIONS, timeout=timeout), clock=Clock())


def test_a_fetch_past_the_deadline_fails_that_issuer_alone_and_keeps_its_keys(
    key_a: IssuerKey, key_b: IssuerKey, caplog: pytest.LogCaptureFixture
) -> None:
    src = sources("slow.example", "fast.example")
    fetch = Routed(
        {
            "https://slow.example/d": [ok(directory((key_a, None))), HANG],
            "https://fast.example/d": [ok(directory((key_b, None))), ok(directory((key_b, None)))],
        }
    )
    src.fetcher = fetch
    src.refresh(force=True)
    with caplog.at_level(logging.INFO, logger="pat_middleware"):
        started = time.monotonic()
        src.refresh(force=True)
        elapsed = time.monotonic() - started
    assert 0.3 <= elapsed < 0.6, elapsed
    assert fetch.cancelled == ["https://slow.example/d"]  # cancelled, not left running
    slow, fast = src.states
    assert (slow.failures, fast.failures) == (1, 0)
    assert slow.last_error == "no complete answer within directory_timeout (0.3 s)"
    assert [k.preferred for k in src.select(src.clock()).issuers] == [key_a, key_b]
    [record] = caplog.records
    assert record.getMessage().startswith(
        "issuer slow.example: directory refresh from https://slow.example/d failed: "
        "no complete answer within directory_timeout (0.3 s); keeping 1 key(s)"
    )


def test_directories_are_fetched_at_once_so_start_up_takes_one_deadline(key_a: IssuerKey) -> None:
    names = [f"slow{i}.example" for i in range(4)]
    src = sources(*names, "fast.example")
    script: dict[str, list[object]] = {f"https://{name}/d": [HANG] for name in names}
    script["https://fast.example/d"] = [ok(directory((key_a, None)))]
    src.fetcher = Routed(script)
    started = time.monotonic()
    src.refresh(force=True)
    elapsed = time.monotonic() - started
    assert elapsed < 0.6, elapsed  # not 4 x 0.3 s
    assert [state.has_keys for state in src.states] == [False] * 4 + [True]


def test_the_deadline_covers_the_fallback_to_the_legacy_path(key_a: IssuerKey) -> None:
    issuers = [IssuerConfig("issuer.example", (), directory_urls=(RFC_URL, LEGACY_URL))]
    src = KeySource(issuers, dataclasses.replace(OPTIONS, timeout=0.3), clock=Clock())
    src.fetcher = Routed({RFC_URL: [DirectoryResponse(404, {})], LEGACY_URL: [HANG]})
    started = time.monotonic()
    src.refresh(force=True)
    assert time.monotonic() - started < 0.6
    [s] = src.states
    assert "directory_timeout" in (s.last_error or "")
    assert s.request().url == RFC_URL  # the next try starts from the first URL again


def test_an_unexpected_fetcher_error_fails_that_issuer_and_backs_off(key_a: IssuerKey) -> None:
    src = sources("broken.example", "fine.example")
    src.fetcher = Routed(
        {
            "https://broken.example/d": [RuntimeError("bug\nsecond line")],
            "https://fine.example/d": [ok(directory((key_a, None)))],
        }
    )
    assert src.refresh(force=True) == 60  # the broken one backs off like any failure
    broken, fine = src.states
    assert broken.last_error == "unexpected RuntimeError: bug"
    assert fine.has_keys


def test_a_directory_being_fetched_is_not_fetched_twice(key_a: IssuerKey) -> None:
    """The background refresher and a blocking refresh (start-up, refresh_keys) never fetch
    one directory at once; the next-due time ignores a directory being fetched."""
    src = sources("one.example", "two.example")
    fetch = Routed({"https://two.example/d": [ok(directory((key_a, None)))]})
    src.fetcher = fetch
    [_, two] = src.claim_due()
    assert src.claim_due(force=True) == []
    assert src.seconds_until_due() == math.inf
    src.refresh(force=True)  # both are being fetched elsewhere: nothing to do
    assert fetch.requests == []

    asyncio.run(src.refresh_claimed(two, fetch))
    assert two.has_keys and src.seconds_until_due() == 900
    assert src.claim_due(force=True) == [two]  # one is still out


def test_an_unknown_key_during_a_fetch_brings_another_fetch_after_it(key_a: IssuerKey) -> None:
    """The fetch under way may have read the directory before the issuer listed the new
    key: the refresh a token asked for still happens, right after it (once per interval)."""
    src = sources("issuer.example")
    gate = asyncio.Event()

    async def fetch(request: DirectoryRequest) -> DirectoryResponse:
        await gate.wait()
        return ok(directory((key_a, None)))

    async def scenario() -> list[str]:
        [state] = src.claim_due(force=True)
        task = asyncio.create_task(src.refresh_claimed(state, fetch))
        await asyncio.sleep(0)
        src.key_missing(src.clock())
        src.key_missing(src.clock())  # rate-limited: still one more fetch, not two
        gate.set()
        await task
        return [s.name for s in src.claim_due()]

    assert asyncio.run(scenario()) == ["issuer.example"]
    assert src.states[0].has_keys


def test_refresh_works_from_inside_a_running_event_loop(key_a: IssuerKey) -> None:
    """A Policy may be built in async code (an ASGI lifespan): the blocking refresh runs its
    own loop elsewhere instead of failing on the caller's."""
    src = sources("issuer.example")
    src.fetcher = Routed({"https://issuer.example/d": [ok(directory((key_a, None)))]})

    async def build() -> float:
        return src.refresh(force=True)

    assert asyncio.run(build()) == 900
    assert src.states[0].has_keys


def test_a_hanging_name_lookup_is_cut_at_the_deadline_too(
    key_a: IssuerKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The HTTP fetcher resolves host names in a worker thread, which cancellation cannot
    stop: the blocking refresh must not wait for that thread after the deadline."""
    from pat_middleware.discovery.refresher import HttpFetcher

    resolve = socket.getaddrinfo
    release = threading.Event()

    def hanging_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host in ("hangs.invalid", b"hangs.invalid"):
            release.wait(3)
        return resolve(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", hanging_getaddrinfo)
    issuers = [IssuerConfig("hangs.invalid", (), directory_urls=("http://hangs.invalid/d",))]
    src = KeySource(issuers, dataclasses.replace(OPTIONS, timeout=0.3))
    src.fetcher = HttpFetcher(0.3)
    started = time.monotonic()
    try:
        src.refresh(force=True)
        elapsed = time.monotonic() - started
    finally:
        release.set()
    assert elapsed < 0.8, elapsed
    assert "directory_timeout" in (src.states[0].last_error or "")


def test_a_forked_child_forgets_the_parents_fetches_in_flight() -> None:
    src = sources("issuer.example")
    assert len(src.claim_due()) == 1
    src.reset_locks()  # what the child does after a fork
    assert len(src.claim_due()) == 1


def test_the_refresher_thread_ends_on_close_and_when_the_policy_is_dropped(
    key_a: IssuerKey,
) -> None:
    with directory_server(document(directory((key_a, None)))) as server:
        for how in ("close", "drop"):
            settings = Settings.from_mapping(
                {
                    "issuers": [{"name": "issuer.example", "directory": server.url}],
                    "secret": "s" * 32,
                }
            )
            policy = Policy(settings)
            hooks = policy._key_source.hooks
            assert hooks is not None
            thread = hooks._thread  # type: ignore[attr-defined]
            assert isinstance(thread, threading.Thread) and thread.is_alive()
            if how == "close":
                policy.close()
            else:
                del policy, hooks
                gc.collect()  # the thread holds the key source weakly: nothing else keeps it
            thread.join(2)
            assert not thread.is_alive(), how


def test_directory_without_httpx_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(
        sys.modules, "pat_middleware.discovery.refresher", None
    )  # as if httpx were missing
    settings = Settings.from_mapping(
        {"issuers": [{"name": "issuer.example", "discover": True}], "secret": "s" * 32}
    )
    with pytest.raises(ConfigurationError) as info:
        Policy(settings)
    assert info.value.setting == "issuers[0].discover"
    assert "pat-middleware[discovery]" in info.value.message


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (RFC_URL, RFC_URL),
        (
            "https://user:pw@issuer.example:8443/dir?token=s3cret#frag",
            "https://issuer.example:8443/dir",
        ),
        ("http://[::1]:9000/d?k=v", "http://[::1]:9000/d"),
    ],
)
def test_directory_urls_are_shown_without_credentials(url: str, shown: str) -> None:
    assert shown_url(url) == shown


def test_failure_logs_and_errors_hide_the_directory_query(
    key_a: IssuerKey, caplog: pytest.LogCaptureFixture
) -> None:
    secret_url = "https://user:pw@issuer.example/dir?api_key=s3cret"
    issuers = [
        IssuerConfig(
            "issuer.example", (), directory_urls=(secret_url,), directory_setting="issuers[0]"
        )
    ]
    src = KeySource(issuers, OPTIONS, clock=Clock())
    fetcher = Scripted()
    fetcher.answers = [DirectoryFetchError("ConnectError: refused")]
    src.fetcher = fetcher
    with caplog.at_level(logging.INFO, logger="pat_middleware"):
        src.refresh(force=True)
    with pytest.raises(ConfigurationError) as info:
        src.check_start_up()
    texts = [r.getMessage() for r in caplog.records] + [info.value.message]
    assert any("https://issuer.example/dir" in t for t in texts)
    assert not any(word in t for t in texts for word in ("s3cret", "api_key", "pw@", "user"))


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://[::1/dir?k=s3cret", "(unparsable URL)"),  # urlsplit raises for these two
        ("https://issuer.example]/dir?k=s3cret", "(unparsable URL)"),
        ("https://issuer.example:99999/dir?k=s3cret", "https://issuer.example:99999/dir"),
        ("https://u:pw@issuer.example:/dir", "https://issuer.example:/dir"),
        ("http://[v1.fe]:80/?k=s3cret", "http://[v1.fe]:80/"),
        ("user:pw@issuer.example/dir?k=s3cret", "(URL without a host)"),
        ("//user:pw@issuer.example/dir?k=s3cret", "//issuer.example/dir"),
        ("", "(URL without a host)"),
    ],
)
def test_odd_directory_urls_are_shown_without_raising(url: str, shown: str) -> None:
    """shown_url runs on error paths: it never raises, and shows a port as written."""
    assert shown_url(url) == shown


_SAFE = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-._~", min_size=1, max_size=12)
_HOSTS = st.one_of(
    _SAFE.map(lambda s: s + ".example"),
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(lambda a: f"[{a}]"),
)
# User info, query and fragment hold a marker that no host, port or path can produce.
_USERINFO = st.text(alphabet=st.characters(exclude_characters="@/?#[]\\"), max_size=12)
_ANY = st.text(max_size=12)


@given(
    scheme=st.sampled_from(["https", "http", "HTTPS", ""]),
    userinfo=st.one_of(st.none(), _USERINFO),
    host=_HOSTS,
    port=st.one_of(st.none(), st.text(alphabet="0123456789", max_size=7)),
    path=st.lists(_SAFE, max_size=3).map(lambda s: "".join("/" + p for p in s)),
    query=st.one_of(st.none(), _ANY.filter(lambda s: "#" not in s)),
    fragment=st.one_of(st.none(), _ANY),
)
def test_shown_url_never_shows_credentials(
    scheme: str,
    userinfo: str | None,
    host: str,
    port: str | None,
    path: str,
    query: str | None,
    fragment: str | None,
) -> None:
    url = (scheme + ":" if scheme else "") + "//"
    url += f"SECRETU{userinfo}@" if userinfo is not None else ""
    url += host + (f":{port}" if port is not None else "") + path
    url += f"?SECRETQ{query}" if query is not None else ""
    url += f"#SECRETF{fragment}" if fragment is not None else ""
    shown = shown_url(url)
    assert "SECRET" not in shown
    assert shown.endswith(host + (f":{port}" if port is not None else "") + path)


@given(st.text())
@example("https://[::1/x?k=v")
@example("//h]/x")
def test_shown_url_never_raises(url: str) -> None:
    shown = shown_url(url)
    assert "?" not in shown and "#" not in shown


@pytest.mark.parametrize("age", ["²", "\u00b9", "-5", "1e3"])
def test_an_age_that_is_not_ascii_digits_is_ignored_not_raised(key_a: IssuerKey, age: str) -> None:
    # "²".isdigit() is true but int("²") raises; a peer's header must not break a refresh.
    s = state()
    headers = {"Content-Type": MEDIA_TYPE, "Cache-Control": "max-age=1000", "Age": age}
    result = s.receive(DirectoryResponse(200, headers, directory((key_a, None))), T0)
    assert result.outcome is Refresh.CHANGED
    assert s.next_refresh == T0 + 900
