"""PST record-key JWK Sets kept fresh by the origin, driven with bytes and a fake clock alone:
the JwksState state machine, the RecordKeySource and its per-request snapshot."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
from collections.abc import Mapping
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import example, given
from hypothesis import strategies as st

from pat_middleware.core.jwks import JWKS_MEDIA_TYPE, RecordKey, RecordKeySet
from pat_middleware.core.redemption_record import RedemptionRecord, sign_redemption_record
from pat_middleware.discovery import (
    DirectoryFetchError,
    DirectoryRequest,
    DirectoryResponse,
    JwksState,
    RecordKeySource,
    Refresh,
    RefreshHooks,
)
from pat_middleware.errors import ConfigurationError, DecodeError, Reason, TokenError
from pat_middleware.settings import DiscoveryOptions
from pat_middleware.settings.pst import PSTIssuerConfig

T0 = 1_800_000_000.0
ISSUER = "https://issuer.example"
OTHER = "https://other.example"
SITE = "https://site.example"
URL = ISSUER + "/.well-known/private-state-token/redemption-record-keys"
OPTIONS = DiscoveryOptions(refresh_min=60, refresh_max=3600, unknown_key_refresh=30, key_grace=600)


@dataclasses.dataclass(frozen=True)
class Signer:
    private: Ed25519PrivateKey
    key: RecordKey

    def record(self, issuer: str = ISSUER, key_id: int = 1, at: float = T0) -> str:
        claims = RedemptionRecord(
            issuer=issuer,
            redeeming_origin=SITE,
            key_id=key_id,
            issued_at=int(at),
            expires_at=int(at) + 86_400,
            record_id="AAAAAAAAAAAAAAAAAAAAAA",
        )
        return sign_redemption_record(claims, self.private, kid=self.key.kid)

    def header(self, issuer: str = ISSUER, **kw: Any) -> str:
        return f'"{issuer}";redemption-record="{self.record(issuer, **kw)}"'


def _signer() -> Signer:
    private = Ed25519PrivateKey.generate()
    return Signer(private, RecordKey.from_public_key(private.public_key()))


@pytest.fixture(scope="module")
def a() -> Signer:
    return _signer()


@pytest.fixture(scope="module")
def b() -> Signer:
    return _signer()


def body(*signers: Signer) -> bytes:
    return RecordKeySet(tuple(s.key for s in signers)).to_bytes()


def ok(
    data: bytes, cache_control: str | None = "max-age=1000", **headers: str
) -> DirectoryResponse:
    out = {"Content-Type": JWKS_MEDIA_TYPE}
    out.update((name.replace("_", "-"), value) for name, value in headers.items())
    if cache_control is not None:
        out["Cache-Control"] = cache_control
    return DirectoryResponse(200, out, data)


def state(*, static: tuple[RecordKey, ...] = (), **options: Any) -> JwksState:
    return JwksState(ISSUER, (URL,), dataclasses.replace(OPTIONS, **options), static=static)


def kids(s: JwksState, now: float) -> list[str]:
    return [k.kid for k in s.select(now)[0].keys]


# ------------------------------------------------------------------ the state machine


@pytest.mark.parametrize(
    ("headers", "delay"),
    [
        ({"Cache-Control": "max-age=1000"}, 900),
        ({"Cache-Control": "max-age=1000", "Age": "400"}, 540),
        ({"Cache-Control": "max-age=10"}, 60),  # clamped up to directory_refresh_min
        ({"Cache-Control": "max-age=86400"}, 3600),  # clamped down to directory_refresh_max
        ({"Cache-Control": "no-store"}, 60),
        ({}, 60),
    ],
)
def test_max_age_sets_the_next_refresh_within_bounds(
    a: Signer, headers: Mapping[str, str], delay: int
) -> None:
    s = state()
    result = s.receive(
        DirectoryResponse(200, {**headers, "Content-Type": JWKS_MEDIA_TYPE}, body(a)), T0
    )
    assert result.outcome is Refresh.CHANGED
    assert s.next_refresh == T0 + delay and kids(s, T0) == [a.key.kid]


def test_requests_ask_for_a_jwk_set_and_revalidate_with_the_etag(a: Signer) -> None:
    s = state()
    request = s.request()
    assert (request.url, request.noun, request.max_size) == (URL, "JWK Set", 65536)
    assert dict(request.headers) == {"Accept": f"{JWKS_MEDIA_TYPE}, application/json;q=0.5"}
    assert s.receive(ok(body(a), ETag='"v1"'), T0).outcome is Refresh.CHANGED
    assert dict(s.request().headers)["If-None-Match"] == '"v1"'
    assert s.receive(ok(body(a)), T0 + 1).outcome is Refresh.UNCHANGED
    assert s.receive(ok(body(a), ETag='"v2"'), T0 + 2).outcome is Refresh.UNCHANGED
    not_modified = DirectoryResponse(304, {"Cache-Control": "max-age=2000"})
    assert s.receive(not_modified, T0 + 3).outcome is Refresh.NOT_MODIFIED
    assert s.next_refresh == T0 + 3 + 1800 and kids(s, T0 + 3) == [a.key.kid]


def test_a_304_without_a_validator_is_a_failure(a: Signer) -> None:
    s = state()
    s.receive(ok(body(a)), T0)
    assert s.receive(DirectoryResponse(304, {}), T0 + 1).outcome is Refresh.FAILED
    assert kids(s, T0 + 1) == [a.key.kid]


@pytest.mark.parametrize(
    ("content_type", "accepted"),
    [
        (JWKS_MEDIA_TYPE, True),
        ("Application/JWK-Set+JSON; charset=utf-8", True),
        ("application/json", True),
        ("application/jwk+json", True),  # application/*+json
        ("text/html", False),
        ("text/plain", False),
        ("application/jose", False),
        (None, False),
    ],
)
def test_only_the_jwk_set_media_type_or_json_is_read(
    a: Signer, b: Signer, content_type: str | None, accepted: bool
) -> None:
    s = state()
    s.receive(ok(body(a)), T0)
    headers = {} if content_type is None else {"Content-Type": content_type}
    result = s.receive(DirectoryResponse(200, headers, body(b)), T0 + 1)
    if accepted:
        assert result.outcome is Refresh.CHANGED
    else:
        assert result.outcome is Refresh.FAILED and "JWK Set came" in result.detail
        assert kids(s, T0 + 1) == [a.key.kid]


@pytest.mark.parametrize(
    ("response", "detail"),
    [
        (DirectoryResponse(500, {}), "HTTP 500"),
        (DirectoryResponse(404, {}), "HTTP 404"),
        (ok(b"<html>"), "not JSON"),
        (ok(b'{"keys": [{"kty": "RSA", "n": "AQAB", "e": "AQAB"}]}'), "no Ed25519 key"),
        (ok(b" " * 70_000), "longer than"),
    ],
)
def test_failures_keep_the_last_good_keys_and_back_off(
    a: Signer, response: DirectoryResponse, detail: str
) -> None:
    s = state()
    s.receive(ok(body(a)), T0)
    now = T0 + 1000
    for delay in (60, 120, 240, 480, 960, 1920, 3600, 3600):
        result = s.receive(response, now)
        assert result.outcome is Refresh.FAILED and detail in result.detail
        assert s.next_refresh == now + delay
        now = s.next_refresh
    assert kids(s, now) == [a.key.kid] and s.failures == 8 and s.last_error
    assert s.receive(ok(body(a)), now).outcome is Refresh.UNCHANGED
    assert s.failures == 0 and s.last_error is None


def test_a_set_that_publishes_a_private_key_is_refused(a: Signer, b: Signer) -> None:
    s = state()
    s.receive(ok(body(a)), T0)
    leaked = json.loads(body(b))
    leaked["keys"][0]["d"] = leaked["keys"][0]["x"]
    result = s.receive(ok(json.dumps(leaked).encode()), T0 + 1)
    assert result.outcome is Refresh.FAILED and "private key material" in result.detail
    assert kids(s, T0 + 1) == [a.key.kid]


def test_a_removed_key_stays_trusted_for_the_grace_period(a: Signer, b: Signer) -> None:
    s = state()
    s.receive(ok(body(a), "max-age=300"), T0)  # fresh for less than directory_key_grace
    assert s.select(T0)[1] == float("inf")
    assert s.receive(ok(body(b), "max-age=300"), T0 + 100).outcome is Refresh.CHANGED
    keys, changes_at = s.select(T0 + 100)
    assert [k.kid for k in keys.keys] == [b.key.kid, a.key.kid]
    assert changes_at == T0 + 100 + 600  # directory_key_grace
    assert kids(s, T0 + 699) == [b.key.kid, a.key.kid]
    assert kids(s, T0 + 700) == [b.key.kid]


def test_the_grace_is_at_least_what_the_last_set_was_fresh_for(a: Signer, b: Signer) -> None:
    s = state()
    s.receive(ok(body(a), "max-age=3000"), T0)
    s.receive(ok(body(b)), T0 + 10)
    assert s.select(T0 + 10)[1] == T0 + 10 + 3000


def test_a_key_that_comes_back_is_no_longer_retired(a: Signer, b: Signer) -> None:
    s = state()
    s.receive(ok(body(a)), T0)
    s.receive(ok(body(b)), T0 + 1)
    s.receive(ok(body(a, b)), T0 + 2)
    assert s.retired == {} and s.select(T0 + 2)[1] == float("inf")


def test_configured_keys_are_always_trusted_beside_fetched_ones(a: Signer, b: Signer) -> None:
    s = state(static=(a.key,))
    assert s.has_keys and kids(s, T0) == [a.key.kid]
    s.receive(ok(body(b, a)), T0)
    assert kids(s, T0) == [a.key.kid, b.key.kid]
    s.receive(ok(body(b)), T0 + 1)
    assert kids(s, T0 + 10**6) == [a.key.kid, b.key.kid]  # a is configured: no grace ends


def test_an_early_refresh_is_rate_limited(a: Signer) -> None:
    s = state()
    s.receive(ok(body(a)), T0)
    assert not s.due(T0 + 1)
    assert s.request_refresh(T0 + 1) and s.due(T0 + 1)
    s.receive(ok(body(a)), T0 + 1)
    assert not s.request_refresh(T0 + 30)
    assert s.request_refresh(T0 + 31)


# ----------------------------------------------------------------------- the key source


class Scripted:
    """A fetcher answering each URL from its own script; "hang" waits until cancelled."""

    def __init__(self, script: dict[str, list[object]]) -> None:
        self.script = script
        self.requests: list[DirectoryRequest] = []

    async def __call__(self, request: DirectoryRequest) -> DirectoryResponse:
        self.requests.append(request)
        answer = self.script[request.url].pop(0)
        if answer == "hang":
            await asyncio.Event().wait()
        if isinstance(answer, BaseException):
            raise answer
        if not isinstance(answer, DirectoryResponse):
            raise TypeError(answer)
        return answer


class Hooks(RefreshHooks):
    def __init__(self) -> None:
        self.woken = 0
        self.started = 0

    def wake(self) -> None:
        self.woken += 1

    def ensure_running(self) -> None:
        self.started += 1


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


OTHER_URL = OTHER + "/keys"


def source(
    clock: Clock, *configs: PSTIssuerConfig, **options: Any
) -> tuple[RecordKeySource, Hooks]:
    if not configs:
        configs = (
            PSTIssuerConfig(ISSUER, URL, setting="pst_issuers[0].jwks"),
            PSTIssuerConfig(OTHER, OTHER_URL, setting="pst_issuers[1].jwks"),
        )
    src = RecordKeySource(
        configs,
        dataclasses.replace(OPTIONS, **options),
        accepted_origins=[SITE],
        clock=clock,
    )
    hooks = Hooks()
    src.hooks = hooks
    return src, hooks


def test_the_snapshot_is_reused_until_keys_change(a: Signer, b: Signer) -> None:
    clock = Clock()
    src, hooks = source(clock)
    src.fetcher = Scripted({URL: [ok(body(a))], OTHER_URL: [ok(body(b))]})
    empty = src.current()
    assert dict(empty.trusted) == {ISSUER: RecordKeySet(()), OTHER: RecordKeySet(())}
    assert src.refresh(force=True) == 900
    first = src.current()
    assert first is not empty and first.version == 2 and hooks.started == 1
    assert [k.kid for k in first.trusted[ISSUER].keys] == [a.key.kid]
    assert src.current() is first  # nothing changed: the same object, no lock taken
    with pytest.raises(TypeError):
        first.trusted[ISSUER] = RecordKeySet(())  # type: ignore[index]
    assert first.verifier.verify(a.header(), now=clock.now) is not None
    assert first.verifier.verify(b.header(OTHER), now=clock.now) is not None


def test_an_unknown_kid_refreshes_that_issuer_alone_at_most_once_per_interval(
    a: Signer, b: Signer
) -> None:
    clock = Clock()
    src, hooks = source(clock)
    src.fetcher = Scripted({URL: [ok(body(a))], OTHER_URL: [ok(body(a))]})
    src.refresh(force=True)
    clock.now += 1
    for _ in range(3):
        with pytest.raises(TokenError) as info:
            src.verify(b.header())  # signed under a key ISSUER has not published yet
        assert info.value.reason is Reason.UNKNOWN_KEY
    assert hooks.woken == 1
    issuer, other = src.states
    assert issuer.due(clock.now) and not other.due(clock.now)
    src.fetcher = Scripted({URL: [ok(body(a, b))]})
    src.refresh()
    record = src.verify(b.header(at=clock.now))
    assert record is not None and record.kid == b.key.kid
    clock.now += 30
    with pytest.raises(TokenError):
        src.verify(_signer().header())
    assert hooks.woken == 2


def test_refusals_for_other_reasons_ask_for_no_refresh(a: Signer, b: Signer) -> None:
    clock = Clock()
    src, hooks = source(clock)
    src.fetcher = Scripted({URL: [ok(body(a))], OTHER_URL: [ok(body(a))]})
    src.refresh(force=True)
    for value in (
        a.header(at=T0 - 10**6),  # expired
        a.header("https://untrusted.example"),
        '"https://issuer.example";redemption-record="x.y.z"',
        "not a header",
    ):
        with pytest.raises(TokenError):
            src.verify(value)
    assert src.verify(None) is None and src.verify("") is None
    assert hooks.woken == 0


def test_an_unknown_kid_among_several_records_still_refreshes(a: Signer, b: Signer) -> None:
    """The error names the first issuer's reason; the refresh looks at every record."""
    clock = Clock()
    src, hooks = source(clock)
    src.fetcher = Scripted({URL: [ok(body(a))], OTHER_URL: [ok(body(a))]})
    src.refresh(force=True)
    value = a.header(at=T0 - 10**6) + ", " + b.header(OTHER)
    with pytest.raises(TokenError) as info:
        src.verify(value)
    assert info.value.reason is Reason.EXPIRED
    assert hooks.woken == 1
    assert [s.due(clock.now) for s in src.states] == [False, True]


def test_configured_keys_need_no_fetch(a: Signer) -> None:
    clock = Clock()
    src, hooks = source(clock, PSTIssuerConfig(ISSUER, keys=(a.key,), labels=frozenset({1})))
    assert not src.discovers and src.refresh() == float("inf")
    src.check_start_up()
    record = src.verify(a.header())
    assert record is not None and record.key_id == 1
    with pytest.raises(TokenError) as info:
        src.verify(a.header(key_id=2))
    assert info.value.reason is Reason.UNTRUSTED_ISSUER  # label 2 is not accepted
    with pytest.raises(TokenError):
        src.verify(_signer().header())
    assert hooks.woken == 0  # nothing to fetch


def test_a_rotation_seen_through_the_source(a: Signer, b: Signer) -> None:
    """The issuer swaps its signing key and drops the old one from its set at once: records
    signed before still verify for the grace period, new ones as soon as the set is read."""
    clock = Clock()
    src, _ = source(clock, PSTIssuerConfig(ISSUER, URL))
    src.fetcher = Scripted({URL: [ok(body(a)), ok(body(b))]})
    src.refresh(force=True)
    old = a.header()
    clock.now += 100
    src.refresh(force=True)
    assert src.verify(old) is not None and src.verify(b.header(at=clock.now)) is not None
    snapshot = src.current()
    assert snapshot.valid_until == T0 + 100 + 1000  # max(grace, the last max-age)
    clock.now = snapshot.valid_until
    assert src.current() is not snapshot
    with pytest.raises(TokenError) as info:
        src.verify(old)
    assert info.value.reason is Reason.UNKNOWN_KEY


def test_a_fetch_past_the_deadline_fails_that_issuer_alone(a: Signer, b: Signer) -> None:
    clock = Clock()
    src, _ = source(clock, timeout=0.3)
    src.fetcher = Scripted({URL: [ok(body(a)), "hang"], OTHER_URL: [ok(body(b)), ok(body(b))]})
    src.refresh(force=True)
    started = time.monotonic()
    src.refresh(force=True)
    assert 0.3 <= time.monotonic() - started < 0.6
    issuer, other = src.states
    assert (issuer.failures, other.failures) == (1, 0)
    assert issuer.last_error == "no complete answer within directory_timeout (0.3 s)"
    assert src.verify(a.header()) is not None  # last good keys kept


def test_start_up_without_keys_names_the_setting(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    src, _ = source(clock)
    src.fetcher = Scripted(
        {URL: [DirectoryFetchError("ConnectError: refused")], OTHER_URL: [ok(b"{}")]}
    )
    with caplog.at_level(logging.INFO, logger="pat_middleware"):
        src.refresh(force=True)
    messages = sorted(r.getMessage() for r in caplog.records)
    assert messages[0] == (
        f"issuer {ISSUER}: JWK Set refresh from {URL} failed: ConnectError: refused; "
        "keeping 0 key(s), next try in 60 s"
    )
    with pytest.raises(ConfigurationError) as info:
        src.check_start_up()
    assert info.value.setting == "pst_issuers[0].jwks"
    assert "no record verification key could be fetched" in info.value.message
    assert "directory_require_keys = false" in info.value.message
    lenient, _ = source(clock, require_keys=False)
    lenient.fetcher = Scripted({URL: [DirectoryResponse(500, {})], OTHER_URL: [ok(b"{}")]})
    lenient.refresh(force=True)
    lenient.check_start_up()  # warns, once per issuer


def test_a_change_is_logged_with_the_kids(a: Signer, caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    src, _ = source(clock, PSTIssuerConfig(ISSUER, URL))
    src.fetcher = Scripted({URL: [ok(body(a))]})
    with caplog.at_level(logging.INFO, logger="pat_middleware"):
        src.refresh(force=True)
    [record] = caplog.records
    assert record.getMessage() == (
        f"issuer {ISSUER}: JWK Set lists 1 record key(s): kid {a.key.kid[:16]}"
    )


def test_a_bad_accepted_origin_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError) as info:
        RecordKeySource([], OPTIONS, accepted_origins=["not an origin"])
    assert info.value.setting == "pst_accepted_origins"


def test_a_forked_child_rebuilds_its_snapshot(a: Signer) -> None:
    clock = Clock()
    src, hooks = source(clock, PSTIssuerConfig(ISSUER, keys=(a.key,)))
    first = src.current()
    assert hooks.started == 0  # attach() starts the refresher; current() only restarts it
    src.reset_locks()
    assert src.current() is not first and hooks.started == 1


# ------------------------------------------------------------------------ properties

_TYPES = st.sampled_from(
    [JWKS_MEDIA_TYPE, "application/json", "text/html", "", "application/jwk-set+json;q=1"]
)
_KEYS = [_signer().key for _ in range(3)]
_GOOD = RecordKeySet(tuple(_KEYS)).to_bytes()
_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@given(st.binary(max_size=400), st.integers(0, 10_000), st.integers(0, 255))
@example(b"", 0, 0)
def test_the_published_jwks_parser_raises_only_decode_errors(
    data: bytes, position: int, value: int
) -> None:
    mutated = bytearray(_GOOD)
    mutated[position % len(mutated)] = value
    for candidate in (data, bytes(mutated), _GOOD[: position % len(_GOOD)]):
        try:
            parsed = RecordKeySet.from_published(candidate)
        except DecodeError:
            continue
        assert 0 < len(parsed.keys) <= 32


@given(st.sampled_from(["kty", "crv", "x", "kid", "alg", "use", "key_ops", "d"]), _json_values)
def test_any_member_value_is_skipped_or_read(name: str, value: Any) -> None:
    doc = json.loads(_GOOD)
    doc["keys"][1][name] = value
    try:
        parsed = RecordKeySet.from_published(json.dumps(doc))
    except DecodeError as e:
        assert name == "d" and "private" in str(e)
        return
    assert _KEYS[0] in parsed.keys and _KEYS[2] in parsed.keys


@given(
    st.integers(100, 599),
    _TYPES,
    st.binary(max_size=200) | st.sampled_from([_GOOD, b"{}", b'{"keys":[]}']),
    st.text(max_size=40),
)
def test_the_state_machine_never_raises_and_keeps_good_keys(
    status: int, content_type: str, data: bytes, cache_control: str
) -> None:
    s = state()
    s.receive(ok(_GOOD), T0)
    headers = {"Content-Type": content_type, "Cache-Control": cache_control, "ETag": cache_control}
    result = s.receive(DirectoryResponse(status, headers, data), T0 + 1)
    assert result.outcome in (
        Refresh.CHANGED,
        Refresh.UNCHANGED,
        Refresh.FAILED,
        Refresh.NOT_MODIFIED,
    )
    keys, _ = s.select(T0 + 1)
    assert {k.kid for k in _KEYS} <= {k.kid for k in keys.keys}  # removed ones in their grace
    assert T0 + 1 + 60 <= s.next_refresh <= T0 + 1 + 3600


def test_an_issuer_configured_twice_is_refused() -> None:
    twice = [PSTIssuerConfig(ISSUER, URL), PSTIssuerConfig(ISSUER + ":443", OTHER_URL)]
    with pytest.raises(ConfigurationError) as info:
        RecordKeySource(twice, OPTIONS, accepted_origins=[SITE])
    assert info.value.setting == "pst_issuers"


def test_key_missing_for_names_it_does_not_fetch_does_nothing(a: Signer) -> None:
    clock = Clock()
    src, hooks = source(clock)
    src.fetcher = Scripted({URL: [ok(body(a))], OTHER_URL: [ok(body(a))]})
    src.refresh(force=True)
    src.key_missing(clock.now, ["https://unknown.example"])
    assert hooks.woken == 0
    src.key_missing(clock.now, [OTHER])
    assert hooks.woken == 1 and [s.due(clock.now) for s in src.states] == [False, True]
