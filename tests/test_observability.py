"""Logging and metrics: one structured record and one metrics event per decision, no work
when logging is off, and a hook that cannot break requests."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from pat_middleware.errors import ConfigurationError, Reason
from pat_middleware.integrations.asgi import PrivateTokenMiddleware
from pat_middleware.integrations.wsgi import PrivateTokenWSGIMiddleware
from pat_middleware.policy import Outcome, Policy, RequestInfo
from pat_middleware.policy.observe import OUTCOMES, DecisionEvent, MetricsHook
from pat_middleware.stores import MemoryReplayStore, StoreUnavailable
from pat_middleware.tokens.blind_rsa import IssuerKey

from ._origin import ISSUER, Browser, FakeClock, answer, make_settings, redemption

DECISION_LOGGER = "pat_middleware.decision"


class Recorder:
    """A metrics hook keeping every event."""

    def __init__(self) -> None:
        self.events: list[DecisionEvent] = []

    def record(self, event: DecisionEvent) -> None:
        self.events.append(event)


class _FullStore:
    def spend(self, key: bytes, ttl: float) -> bool:
        raise StoreUnavailable("replay store is full", retry_after=3)

    async def spend_async(self, key: bytes, ttl: float) -> bool:
        raise StoreUnavailable("replay store is full", retry_after=3)

    def close(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def policy(issuer_key: IssuerKey, clock: FakeClock, recorder: Recorder) -> Policy:
    return Policy(make_settings(issuer_key), clock=clock, metrics=recorder)


@pytest.fixture
def decisions(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="pat_middleware")
    return caplog


def _records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == DECISION_LOGGER]


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k.startswith("pat_")}


def _every_decision(
    policy: Policy, private_key: rsa.RSAPrivateKey, key: IssuerKey, issuer_key_id: str
) -> list[tuple[str, dict[str, Any], int]]:
    """Drive one decision of each kind; returns (outcome, expected pat_ fields, level)."""
    browser = Browser(policy)
    assert policy.evaluate(RequestInfo("GET", "/public")).outcome is Outcome.SKIP
    www = browser.challenge()
    token = answer(www, private_key, key)
    assert browser.get(token=token).outcome is Outcome.PASS
    assert browser.get().outcome is Outcome.SESSION  # on the verified session
    assert browser.get(token=token).reason is Reason.REPLAYED
    assert browser.get(authorization="PrivateToken token=@@").reason is Reason.MALFORMED
    bad = bytearray(answer(www, private_key, key))
    bad[-1] ^= 1
    assert browser.get(token=bytes(bad)).reason is Reason.BAD_SIGNATURE
    trusted = {"pat_issuer": ISSUER, "pat_key_id": issuer_key_id}
    untrusted = {"pat_issuer": None, "pat_key_id": None}
    none = {"pat_reason": None, "pat_detail": None}
    return [
        ("challenge", {"pat_status": 401, **none, **untrusted}, logging.DEBUG),
        ("pass", {"pat_status": 200, **none, **trusted}, logging.DEBUG),
        ("session", {"pat_status": 200, **none, **untrusted}, logging.DEBUG),
        (
            "reject",
            {
                "pat_status": 401,
                "pat_reason": "replayed",
                "pat_detail": "token was already spent",
                **trusted,
            },
            logging.INFO,
        ),
        ("reject", {"pat_status": 401, "pat_reason": "malformed", **untrusted}, logging.INFO),
        ("reject", {"pat_status": 401, "pat_reason": "bad_signature", **trusted}, logging.INFO),
    ]


# ------------------------------------------------------------------------------ logging


def test_one_structured_record_per_decision(
    policy: Policy,
    rsa_2048: rsa.RSAPrivateKey,
    issuer_key: IssuerKey,
    decisions: pytest.LogCaptureFixture,
) -> None:
    expected = _every_decision(policy, rsa_2048, issuer_key, issuer_key.token_key_id.hex())
    records = _records(decisions)
    assert [r.pat_outcome for r in records] == [e[0] for e in expected]  # type: ignore[attr-defined]
    for record, (outcome, fields, level) in zip(records, expected, strict=True):
        got = _fields(record)
        assert got["pat_outcome"] == outcome
        assert {k: got[k] for k in fields} == fields, record.getMessage()
        assert set(got) == {
            "pat_outcome",
            "pat_reason",
            "pat_status",
            "pat_issuer",
            "pat_key_id",
            "pat_detail",
        }
        assert record.levelno == level
        assert "\n" not in record.getMessage()
    assert [r.getMessage() for r in records[:4]] == [
        "challenge status=401",
        f"pass status=200 issuer={ISSUER} key_id={issuer_key.token_key_id.hex()}",
        "session status=200",
        f"reject reason=replayed status=401 issuer={ISSUER} "
        f"key_id={issuer_key.token_key_id.hex()}: token was already spent",
    ]


def test_store_failure_is_one_warning(
    issuer_key: IssuerKey,
    clock: FakeClock,
    rsa_2048: rsa.RSAPrivateKey,
    decisions: pytest.LogCaptureFixture,
) -> None:
    browser = Browser(Policy(make_settings(issuer_key), replay_store=_FullStore(), clock=clock))
    token = answer(browser.challenge(), rsa_2048, issuer_key)
    assert browser.get(token=token).status == 503
    record = _records(decisions)[-1]
    assert record.levelno == logging.WARNING
    assert record.getMessage() == "unavailable status=503: replay store is full"
    assert _fields(record)["pat_outcome"] == "unavailable"
    assert len(_records(decisions)) == 2  # the challenge, then this


def test_unknown_key_is_not_attributed_to_an_issuer(
    policy: Policy, other_rsa_2048: rsa.RSAPrivateKey, decisions: pytest.LogCaptureFixture
) -> None:
    """The key id of an unknown key is client input: it is neither logged nor counted."""
    from pat_middleware.tokens.blind_rsa import encode_pss_spki

    stranger = IssuerKey.from_spki(encode_pss_spki(other_rsa_2048.public_key()))
    browser = Browser(policy)
    decision = browser.get(token=answer(browser.challenge(), other_rsa_2048, stranger))
    assert decision.reason is Reason.UNKNOWN_KEY
    fields = _fields(_records(decisions)[-1])
    assert (fields["pat_issuer"], fields["pat_key_id"]) == (None, None)
    assert stranger.token_key_id.hex() not in _records(decisions)[-1].getMessage()


def test_no_logging_work_when_the_level_is_off(
    policy: Policy,
    rsa_2048: rsa.RSAPrivateKey,
    issuer_key: IssuerKey,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Disabled logging costs one level check: no message is built, logging is not called."""
    logger = logging.getLogger(DECISION_LOGGER)

    def no_call(*args: object, **kwargs: object) -> None:
        raise AssertionError("logging was called while the level is off")

    monkeypatch.setattr(logger, "log", no_call)
    logger.setLevel(logging.ERROR)
    try:
        _every_decision(policy, rsa_2048, issuer_key, "")
    finally:
        logger.setLevel(logging.NOTSET)


# ------------------------------------------------------------------------------ metrics


def test_metrics_hook_gets_one_event_per_decision(
    policy: Policy, recorder: Recorder, rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey
) -> None:
    assert isinstance(recorder, MetricsHook)
    expected = _every_decision(policy, rsa_2048, issuer_key, issuer_key.token_key_id.hex())
    assert [e.outcome for e in recorder.events] == [e[0] for e in expected]
    for event, (_outcome, fields, _level) in zip(recorder.events, expected, strict=True):
        assert event.outcome in OUTCOMES
        assert event.status == fields["pat_status"]
        assert (event.reason.value if event.reason else None) == fields.get("pat_reason")
        assert (event.issuer, event.key_id) == (fields["pat_issuer"], fields["pat_key_id"])
        assert 0 < event.seconds < 5


class _SlowStore(MemoryReplayStore):
    def spend(self, key: bytes, ttl: float) -> bool:
        time.sleep(0.05)
        return super().spend(key, ttl)


@pytest.mark.parametrize("evaluate", ["sync", "async"])
def test_verification_latency_covers_the_replay_store(
    issuer_key: IssuerKey,
    clock: FakeClock,
    recorder: Recorder,
    rsa_2048: rsa.RSAPrivateKey,
    evaluate: str,
) -> None:
    """The time reported for a redemption includes the store's round trip."""
    policy = Policy(
        make_settings(issuer_key), replay_store=_SlowStore(), clock=clock, metrics=recorder
    )
    request = redemption(policy, rsa_2048, issuer_key)
    if evaluate == "sync":
        decision = policy.evaluate(request)
    else:
        decision = asyncio.run(policy.evaluate_async(request))
    assert decision.outcome is Outcome.PASS
    challenge, passed = recorder.events
    assert challenge.seconds < 0.05 <= passed.seconds < 5


def test_latency_is_not_measured_without_a_hook(
    issuer_key: IssuerKey,
    clock: FakeClock,
    rsa_2048: rsa.RSAPrivateKey,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_timing() -> float:
        raise AssertionError("perf_counter called without a metrics hook")

    monkeypatch.setattr(time, "perf_counter", no_timing)
    _every_decision(Policy(make_settings(issuer_key), clock=clock), rsa_2048, issuer_key, "")


class _Broken:
    def __init__(self) -> None:
        self.calls = 0

    def record(self, event: DecisionEvent) -> None:
        self.calls += 1
        raise RuntimeError("statsd is down")


def test_a_raising_hook_never_breaks_requests_and_is_logged_once(
    issuer_key: IssuerKey,
    clock: FakeClock,
    rsa_2048: rsa.RSAPrivateKey,
    decisions: pytest.LogCaptureFixture,
) -> None:
    hook = _Broken()
    policy = Policy(make_settings(issuer_key), clock=clock, metrics=hook)
    _every_decision(policy, rsa_2048, issuer_key, issuer_key.token_key_id.hex())
    assert hook.calls == 6
    errors = [r for r in decisions.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert errors[0].name == "pat_middleware" and "_Broken" in errors[0].getMessage()
    assert errors[0].exc_info is not None


def test_a_ready_policy_brings_its_own_hook(policy: Policy, recorder: Recorder) -> None:
    with pytest.raises(ConfigurationError) as caught:
        PrivateTokenMiddleware(_ok, policy=policy, metrics=recorder)
    assert caught.value.setting == "metrics"


async def _ok(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def _wsgi_ok(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [])
    return [b"ok"]


def test_adapters_pass_the_hook_to_the_policy_they_build(
    issuer_key: IssuerKey, recorder: Recorder
) -> None:
    settings = make_settings(issuer_key)
    asgi = PrivateTokenMiddleware(_ok, settings=settings, metrics=recorder)
    wsgi = PrivateTokenWSGIMiddleware(_wsgi_ok, settings=settings, metrics=recorder)
    assert asgi.policy.metrics is recorder and wsgi.policy.metrics is recorder

    with httpx.Client(transport=httpx.WSGITransport(app=wsgi), base_url="http://t") as client:
        assert client.get("/protected").status_code == 401

    async def over_asgi() -> int:
        transport = httpx.ASGITransport(app=asgi)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return (await client.get("/protected")).status_code

    assert asyncio.run(over_asgi()) == 401
    assert [e.outcome for e in recorder.events] == ["challenge", "challenge"]
