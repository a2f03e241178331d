"""A Private State Token redemption record as a trust signal in the policy: it passes a
protected route exactly as a token does, the same record passes again while it lives,
untrusted issuers are skipped, and bad records are refused with their reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pat_middleware.core.jwks import RecordKey, RecordKeySet
from pat_middleware.core.redemption_record import RedemptionRecord, sign_redemption_record
from pat_middleware.errors import ConfigurationError, Reason
from pat_middleware.policy import Outcome, Policy, RequestInfo
from pat_middleware.settings import Settings
from pat_middleware.tokens.blind_rsa import IssuerKey

from ._origin import SECRET, FakeClock, issuer_entry

ISSUER_ORIGIN = "https://pst-issuer.example"
SITE = "https://www.example.com"
NOW = 1_800_000_000


@pytest.fixture(scope="module")
def signing_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def _record(key: Ed25519PrivateKey, **overrides: Any) -> str:
    fields: dict[str, Any] = {
        "issuer": ISSUER_ORIGIN,
        "redeeming_origin": SITE,
        "key_id": 3,
        "issued_at": NOW - 10,
        "expires_at": NOW + 3600,
        "record_id": "r1",
    }
    fields.update(overrides)
    return sign_redemption_record(RedemptionRecord(**fields), key)


def _header(record: str, issuer: str = ISSUER_ORIGIN) -> str:
    return f'"{issuer}";redemption-record="{record}"'


def _settings(tmp_path: Path, key: Ed25519PrivateKey, **extra: Any) -> Settings:
    jwks = tmp_path / "rr-keys.json"
    jwks.write_bytes(RecordKeySet((RecordKey.from_public_key(key.public_key()),)).to_bytes())
    data: dict[str, Any] = {
        "secret": SECRET,
        "origin_info": ["www.example.com"],
        "protect": ["/protected"],
        "pst_issuers": [{"origin": ISSUER_ORIGIN, "jwks_file": str(jwks)}],
        **extra,
    }
    return Settings.from_mapping(data)


def _policy(settings: Settings) -> Policy:
    return Policy(settings, clock=FakeClock(NOW))


def _get(policy: Policy, header: str | None, **kwargs: Any) -> Any:
    request = RequestInfo("GET", "/protected", redemption_record=header, **kwargs)
    return policy.evaluate(request)


def test_a_valid_record_passes_and_passes_again_while_it_lives(
    tmp_path: Path, signing_key: Ed25519PrivateKey
) -> None:
    policy = _policy(_settings(tmp_path, signing_key))
    header = _header(_record(signing_key))
    for _ in range(3):  # a bearer record: nothing is spent
        decision = _get(policy, header)
        assert decision.outcome is Outcome.PASS, decision
        assert decision.token is not None
        assert (decision.token.signal, decision.token.issuer, decision.token.label) == (
            "redemption-record",
            ISSUER_ORIGIN,
            3,
        )
        assert decision.private


def test_without_a_record_a_pst_only_site_answers_401_without_a_challenge(
    tmp_path: Path, signing_key: Ed25519PrivateKey
) -> None:
    decision = _get(_policy(_settings(tmp_path, signing_key)), None)
    assert (decision.outcome, decision.status) == (Outcome.CHALLENGE, 401)
    assert "WWW-Authenticate" not in dict(decision.headers)


def test_with_a_private_token_issuer_too_the_usual_challenge_is_sent(
    tmp_path: Path, signing_key: Ed25519PrivateKey, issuer_key: IssuerKey
) -> None:
    settings = _settings(
        tmp_path, signing_key, issuers=[issuer_entry("issuer.example", issuer_key)]
    )
    policy = _policy(settings)
    assert dict(_get(policy, None).headers)["WWW-Authenticate"].startswith("PrivateToken ")
    assert _get(policy, _header(_record(signing_key))).outcome is Outcome.PASS


def test_untrusted_issuers_are_skipped(tmp_path: Path, signing_key: Ed25519PrivateKey) -> None:
    other = _header(_record(signing_key, issuer="https://other.example"), "https://other.example")
    decision = _get(_policy(_settings(tmp_path, signing_key)), other)
    assert decision.outcome is Outcome.CHALLENGE


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda k: _record(Ed25519PrivateKey.generate()), Reason.UNKNOWN_KEY),  # another key
        (lambda k: _record(k, issued_at=NOW - 7200, expires_at=NOW - 600), Reason.EXPIRED),
        (lambda k: _record(k, redeeming_origin="https://evil.example"), Reason.WRONG_ORIGIN),
        (lambda k: _record(k)[:-8], Reason.MALFORMED),  # truncated
        (lambda k: "not-a-record", Reason.MALFORMED),
    ],
)
def test_bad_records_are_refused_with_their_reason(
    tmp_path: Path, signing_key: Ed25519PrivateKey, make: Any, reason: Reason
) -> None:
    decision = _get(_policy(_settings(tmp_path, signing_key)), _header(make(signing_key)))
    assert decision.outcome is Outcome.REJECT
    assert decision.reason is reason


def test_a_relabelled_record_is_refused(tmp_path: Path, signing_key: Ed25519PrivateKey) -> None:
    head, claims, signature = _record(signing_key).split(".")
    import base64
    import json

    data = json.loads(base64.urlsafe_b64decode(claims + "=="))
    data["key_id"] = 5
    forged = base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()
    decision = _get(
        _policy(_settings(tmp_path, signing_key)), _header(f"{head}.{forged}.{signature}")
    )
    assert (decision.outcome, decision.reason) == (Outcome.REJECT, Reason.BAD_SIGNATURE)


def test_a_route_may_accept_only_one_signal(
    tmp_path: Path, signing_key: Ed25519PrivateKey, issuer_key: IssuerKey
) -> None:
    policy = _policy(_settings(tmp_path, signing_key))
    request = RequestInfo("GET", "/protected", redemption_record=_header(_record(signing_key)))
    assert policy.evaluate(request, accept={"redemption-record"}).outcome is Outcome.PASS
    assert policy.evaluate(request, accept={"private-token"}).outcome is Outcome.CHALLENGE


def test_pst_settings_are_read_from_a_settings_mapping(
    tmp_path: Path, signing_key: Ed25519PrivateKey
) -> None:
    settings = _settings(tmp_path, signing_key)
    assert settings.issuers == ()
    assert settings.pst.accepted_origins == frozenset({SITE})
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_mapping({"secret": SECRET})
    assert caught.value.setting == "issuers"


def test_the_clock_judges_expiry(tmp_path: Path, signing_key: Ed25519PrivateKey) -> None:
    clock = FakeClock(NOW)
    policy = Policy(_settings(tmp_path, signing_key), clock=clock)
    header = _header(_record(signing_key, expires_at=NOW + 100))
    assert _get(policy, header).outcome is Outcome.PASS
    clock.advance(100 + 3600)
    assert _get(policy, header).reason is Reason.EXPIRED
