"""Type 1 at the origin: settings holding the issuer's private key, challenges per key type,
and type-1 tokens verified with replay protection exactly as type 2, beside type 2."""

from __future__ import annotations

import dataclasses
import logging
import secrets
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from pat_middleware.core.directory import DirectoryKey, IssuerDirectory
from pat_middleware.core.headers import parse_www_authenticate
from pat_middleware.core.wire import Token, TokenChallenge
from pat_middleware.discovery import DirectoryResponse, DirectoryState
from pat_middleware.errors import ConfigurationError, Reason
from pat_middleware.policy import Outcome, Policy
from pat_middleware.settings import CookieOptions, DiscoveryOptions, Settings
from pat_middleware.settings.loader import DEFAULTS
from pat_middleware.settings.model import field_default
from pat_middleware.tokens.blind_rsa import IssuerKey
from pat_middleware.tokens.oprf import evaluate
from pat_middleware.tokens.voprf import VOPRFTokenKey

from ._origin import ISSUER, OTHER_ISSUER, SECRET, Browser, FakeClock, challenges_of
from .conftest import sign_token

KEY_ENV = "PAT_TEST_TYPE1_KEY"


@pytest.fixture(scope="module")
def voprf_key() -> VOPRFTokenKey:
    return VOPRFTokenKey.generate()


@pytest.fixture
def key_file(tmp_path: Path, voprf_key: VOPRFTokenKey) -> Path:
    path = tmp_path / "issuer-type1.pem"
    path.write_bytes(voprf_key.private_pem())
    return path


def type1_token(key: VOPRFTokenKey, challenge: TokenChallenge, nonce: bytes | None = None) -> bytes:
    """A valid type-1 token: the authenticator is the VOPRF output of the token input (what
    a client's Finalize gives; issuance itself is tested in test_type1_issuance)."""
    unsigned = Token(1, nonce or secrets.token_bytes(32), challenge.digest, key.token_key_id, b"-")
    token_input = unsigned.authenticator_input
    return token_input + evaluate(key.secret_key, token_input)


def _settings(entries: list[dict[str, Any]], **more: Any) -> Settings:
    data: dict[str, Any] = {"issuers": entries, "secret": SECRET, "protect": ["/protected"]}
    data.update(more)
    return Settings.from_mapping(data)


def _error(entries: list[dict[str, Any]], **more: Any) -> ConfigurationError:
    with pytest.raises(ConfigurationError) as info:
        _settings(entries, **more)
    return info.value


def _challenge_for(header: str, issuer: str, token_type: int) -> TokenChallenge:
    found = [
        c for c in challenges_of(header) if (c.issuer_name, c.token_type) == (issuer, token_type)
    ]
    assert len(found) == 1, header
    return found[0]


# ------------------------------------------------------------------------------- settings


def test_private_key_file_loads_once_and_hides(
    key_file: Path, voprf_key: VOPRFTokenKey, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = _settings([{"name": ISSUER, "private_key_file": str(key_file)}], token_types=[1])
    assert settings.token_types == frozenset({1})
    (key,) = settings.issuers[0].keys
    assert isinstance(key, VOPRFTokenKey) and key == voprf_key
    assert settings.issuers[0].token_types == frozenset({1})
    policy = Policy(settings, refresh_in_background=False)
    pem_body = b"".join(voprf_key.private_pem().splitlines()[1:-1]).decode()
    shown = [repr(settings), repr(settings.issuers[0]), repr(policy), caplog.text]
    assert all(pem_body not in text and pem_body[:24] not in text for text in shown)


def test_private_key_env(monkeypatch: pytest.MonkeyPatch, voprf_key: VOPRFTokenKey) -> None:
    monkeypatch.setenv(KEY_ENV, voprf_key.private_pem().decode())
    settings = _settings([{"name": ISSUER, "private_key_env": KEY_ENV}], token_types=[1])
    assert settings.issuers[0].keys == (voprf_key,)
    monkeypatch.delenv(KEY_ENV)
    error = _error([{"name": ISSUER, "private_key_env": KEY_ENV}], token_types=[1])
    assert error.setting == "issuers[0].private_key_env" and "not set" in error.message


def test_private_key_file_relative_to_the_toml_file(
    tmp_path: Path, voprf_key: VOPRFTokenKey
) -> None:
    from pat_middleware.settings import load_settings

    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "t1.pem").write_bytes(voprf_key.private_pem())
    (tmp_path / "pat.toml").write_text(
        f'secret = "{SECRET}"\ntoken_types = [1]\n'
        f'[[issuers]]\nname = "{ISSUER}"\nprivate_key_file = "keys/t1.pem"\n',
        encoding="utf-8",
    )
    assert load_settings(tmp_path / "pat.toml").issuers[0].keys == (voprf_key,)


def test_both_types_side_by_side_one_issuer_or_several(
    key_file: Path, issuer_key: IssuerKey, voprf_key: VOPRFTokenKey
) -> None:
    one = _settings(
        [{"name": ISSUER, "token_key": issuer_key.token_key, "private_key_file": str(key_file)}],
        token_types=[1, 2],
    )
    assert {k.token_type for k in one.issuers[0].keys} == {1, 2}
    several = _settings(
        [
            {"name": ISSUER, "token_key": issuer_key.token_key},
            {"name": OTHER_ISSUER, "private_key_file": str(key_file)},
        ],
        token_types=[2, 1],
    )
    assert [i.keys for i in several.issuers] == [(issuer_key,), (voprf_key,)]


def _pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def test_private_keys_where_public_ones_belong_are_refused(
    tmp_path: Path, rsa_2048: rsa.RSAPrivateKey, voprf_key: VOPRFTokenKey
) -> None:
    (tmp_path / "rsa.pem").write_text(_pem(rsa_2048))
    (tmp_path / "t1.pem").write_bytes(voprf_key.private_pem())
    error = _error([{"name": ISSUER, "token_key_file": str(tmp_path / "rsa.pem")}])
    assert error.setting == "issuers[0].token_key_file"
    assert "type-2 (Blind RSA (2048-bit)) private key" in error.message
    assert "needs only the issuer's type-2 public key" in error.message
    error = _error([{"name": ISSUER, "token_key_file": str(tmp_path / "t1.pem")}], token_types=[1])
    assert error.setting == "issuers[0].token_key_file"
    assert "type-1 (VOPRF (P-384, SHA-384)) private key" in error.message
    assert "give it as private_key_file" in error.message
    error = _error([{"name": ISSUER, "token_keys": [_pem(rsa_2048)]}])
    assert error.setting == "issuers[0].token_keys[0]" and "private key" in error.message
    # Nothing of the key is echoed.
    assert _pem(rsa_2048).splitlines()[1][:20] not in str(error)


@pytest.mark.parametrize("form", ["pkcs1", "encrypted", "openssh"])
def test_private_keys_in_other_formats_are_refused_as_token_key_file(
    tmp_path: Path, rsa_2048: rsa.RSAPrivateKey, form: str
) -> None:
    """PKCS#1 ('RSA PRIVATE KEY'), a password-protected PKCS#8 and an OpenSSH key are
    private keys too: none is read as a token-key, and none is echoed."""
    formats = {
        "pkcs1": (serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()),
        "encrypted": (
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"correct horse battery staple"),
        ),
        "openssh": (serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()),
    }
    private_format, encryption = formats[form]
    pem = rsa_2048.private_bytes(serialization.Encoding.PEM, private_format, encryption)
    (tmp_path / "issuer.pem").write_bytes(pem)
    error = _error([{"name": ISSUER, "token_key_file": str(tmp_path / "issuer.pem")}])
    assert error.setting == "issuers[0].token_key_file"
    assert "private key" in error.message
    assert pem.decode().splitlines()[1][:20] not in str(error)


def test_private_key_file_refuses_what_an_origin_must_not_hold(
    tmp_path: Path, rsa_2048: rsa.RSAPrivateKey, key_file: Path
) -> None:
    (tmp_path / "rsa.pem").write_text(_pem(rsa_2048))
    error = _error([{"name": ISSUER, "private_key_file": str(tmp_path / "rsa.pem")}])
    assert error.setting == "issuers[0].private_key_file"
    assert "verified with the issuer's public key" in error.message
    (tmp_path / "p256.pem").write_text(_pem(ec.generate_private_key(ec.SECP256R1())))
    (tmp_path / "junk.pem").write_text("-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END")
    for name in ("p256.pem", "junk.pem"):
        error = _error([{"name": ISSUER, "private_key_file": str(tmp_path / name)}])
        assert "expected an unencrypted PEM private key" in error.message
        assert "c2VjcmV0" not in str(error)
    error = _error([{"name": ISSUER, "private_key_file": str(key_file)}])
    assert error.message.startswith("a type-1 key, but token_types does not list 1")


def test_a_type1_public_key_cannot_verify(voprf_key: VOPRFTokenKey) -> None:
    error = _error([{"name": ISSUER, "token_key": voprf_key.token_key}], token_types=[1])
    assert error.setting == "issuers[0].token_key"
    assert "verify only with the issuer's private key" in error.message


def test_type_1_listed_without_its_private_key(issuer_key: IssuerKey) -> None:
    error = _error([{"name": ISSUER, "token_key": issuer_key.token_key}], token_types=[1, 2])
    assert error.setting == "token_types"
    assert "give it to an issuer as private_key_file or private_key_env" in error.message


def test_every_default_is_read_from_the_dataclasses(issuer_key: IssuerKey) -> None:
    settings = _settings([{"name": ISSUER, "token_key": issuer_key.token_key}])
    for field in dataclasses.fields(Settings):
        if field.name in DEFAULTS:
            assert DEFAULTS[field.name] == field_default(Settings, field.name)
            if field.name not in ("protect", "protect_methods"):
                assert getattr(settings, field.name) == DEFAULTS[field.name], field.name
    assert settings.cookies == CookieOptions()
    assert settings.discovery == DiscoveryOptions()
    assert DEFAULTS["cookie_name"] == field_default(CookieOptions, "session_name")
    assert DEFAULTS["directory_timeout"] == field_default(DiscoveryOptions, "timeout")


# ---------------------------------------------------------------------- the origin path


@pytest.mark.parametrize("mode", ["per-session", "per-request", "none"])
def test_type1_tokens_pass_once_in_every_mode(
    key_file: Path, voprf_key: VOPRFTokenKey, mode: str
) -> None:
    settings = _settings(
        [{"name": ISSUER, "private_key_file": str(key_file)}],
        token_types=[1],
        redemption_context=mode,
        allow_per_process_replay=True,
    )
    policy = Policy(settings, clock=FakeClock(), refresh_in_background=False)
    browser = Browser(policy)
    header = browser.challenge()
    (params,) = parse_www_authenticate(header)
    assert params.token_key == voprf_key.published and len(params.token_key) == 49
    challenge = _challenge_for(header, ISSUER, 1)
    token = type1_token(voprf_key, challenge)
    decision = browser.get(token=token)
    assert decision.outcome is Outcome.PASS, decision
    assert decision.token is not None and decision.token.token_type == 1
    assert decision.token.token_key_id == voprf_key.token_key_id.hex()
    replay = Browser(policy)
    replay.cookies = dict(browser.cookies)
    again = replay.get(token=token)
    assert again.outcome is Outcome.REJECT and again.reason is Reason.REPLAYED
    forged = token[:-1] + bytes([token[-1] ^ 1])
    refused = Browser(policy)
    refused.cookies = dict(browser.cookies)
    assert refused.get(token=forged).reason is Reason.BAD_SIGNATURE


def test_one_issuer_with_both_kinds_challenges_with_both(
    key_file: Path, voprf_key: VOPRFTokenKey, issuer_key: IssuerKey, rsa_2048: rsa.RSAPrivateKey
) -> None:
    settings = _settings(
        [{"name": ISSUER, "token_key": issuer_key.token_key, "private_key_file": str(key_file)}],
        token_types=[1, 2],
    )
    policy = Policy(settings, clock=FakeClock(), refresh_in_background=False)
    browser = Browser(policy)
    header = browser.challenge()
    params = parse_www_authenticate(header)
    assert [(TokenChallenge.from_bytes(p.challenge).token_type, p.token_key) for p in params] == [
        (2, issuer_key.published),
        (1, voprf_key.published),
    ]
    first = browser.get(token=type1_token(voprf_key, _challenge_for(header, ISSUER, 1)))
    assert first.outcome is Outcome.PASS and first.token is not None
    assert first.token.token_type == 1
    other = Browser(policy)
    header = other.challenge()
    token2 = sign_token(rsa_2048, issuer_key, _challenge_for(header, ISSUER, 2))
    second = other.get(token=token2)
    assert second.outcome is Outcome.PASS and second.token is not None
    assert second.token.token_type == 2


def test_a_type1_token_for_the_type2_challenge_is_refused(
    key_file: Path, voprf_key: VOPRFTokenKey, issuer_key: IssuerKey
) -> None:
    settings = _settings(
        [{"name": ISSUER, "token_key": issuer_key.token_key, "private_key_file": str(key_file)}],
        token_types=[1, 2],
    )
    policy = Policy(settings, clock=FakeClock(), refresh_in_background=False)
    browser = Browser(policy)
    header = browser.challenge()
    wrong = type1_token(voprf_key, _challenge_for(header, ISSUER, 2))
    assert browser.get(token=wrong).reason is Reason.CHALLENGE_MISMATCH


def test_type1_tokens_are_unsupported_where_type_1_is_not_listed(
    voprf_key: VOPRFTokenKey, issuer_key: IssuerKey
) -> None:
    policy = Policy(
        _settings([{"name": ISSUER, "token_key": issuer_key.token_key}]),
        clock=FakeClock(),
        refresh_in_background=False,
    )
    browser = Browser(policy)
    header = browser.challenge()
    challenge = _challenge_for(header, ISSUER, 2)
    as_type1 = TokenChallenge(1, ISSUER, challenge.redemption_context, challenge.origin_info)
    decision = browser.get(token=type1_token(voprf_key, as_type1))
    assert decision.reason is Reason.UNSUPPORTED_TYPE


# ---------------------------------------------------------------------------- discovery


def _directory_answer(*entries: tuple[int, bytes, int | None]) -> DirectoryResponse:
    keys = tuple(DirectoryKey(t, raw, not_before) for t, raw, not_before in entries)
    body = IssuerDirectory("/token-request", keys).to_bytes()
    return DirectoryResponse(200, {"Content-Type": "application/json"}, body)


def test_directory_type1_entries_use_the_configured_private_key(
    voprf_key: VOPRFTokenKey, issuer_key: IssuerKey
) -> None:
    unknown = VOPRFTokenKey.generate()
    t0 = 1_700_000_000.0
    s = DirectoryState(
        ISSUER,
        ("https://issuer.example/.well-known/private-token-issuer-directory",),
        DiscoveryOptions(),
        static=(voprf_key,),
        token_types=frozenset({1, 2}),
    )
    answer = _directory_answer(
        (1, unknown.published, None),  # no private key for it here: skipped
        (2, issuer_key.published, None),
        (1, voprf_key.published, int(t0) + 100),
    )
    s.receive(answer, t0)
    assert [k.key for k in s.listed] == [issuer_key, voprf_key]
    keys, changes_at = s.select(t0)
    assert keys.advertised == (issuer_key, voprf_key)  # the static key until the not-before
    assert keys.preferred == issuer_key and set(keys.accepted) == {voprf_key, issuer_key}
    assert changes_at == t0 + 100
    # Type 1 not accepted: the type-2 key alone.
    only2 = DirectoryState(
        ISSUER, ("https://issuer.example/d",), DiscoveryOptions(), static=(voprf_key,)
    )
    only2.receive(answer, t0)
    assert [k.key for k in only2.listed] == [issuer_key]
    assert only2.select(t0)[0].advertised == (issuer_key, voprf_key)


def test_directory_without_a_usable_type1_key_fails_with_the_types() -> None:
    s = DirectoryState(
        ISSUER,
        ("https://issuer.example/d",),
        DiscoveryOptions(),
        token_types=frozenset({1, 2}),
    )
    result = s.receive(_directory_answer((1, VOPRFTokenKey.generate().published, None)), 0)
    assert result.detail == "the directory lists no usable token type 1 or 2 key"
