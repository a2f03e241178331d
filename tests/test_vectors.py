"""Every official vector that concerns type 2, challenges or headers (tests/vectors/README.md)."""

from __future__ import annotations

from typing import Any

import pytest

from pat_middleware import (
    ChallengeParams,
    IssuerKey,
    KeyRing,
    Reason,
    Token,
    TokenChallenge,
    TokenError,
    TrustedKey,
    b64url_encode,
    build_www_authenticate,
    parse_www_authenticate,
    verify_token,
)
from pat_middleware.core.headers import parse_auth_items
from pat_middleware.core.wire import GREASE_TOKEN_TYPES

from .vectors import CHALLENGE_REDEMPTION, HTTP_HEADERS, HTTP_HEADERS_UNQUOTED, TYPE2_ISSUANCE, h

ISSUER = "issuer.example"


@pytest.mark.parametrize("vector", TYPE2_ISSUANCE, ids=lambda v: v["nonce"][:8])
def test_rfc9578_type2_token_verifies(vector: dict[str, Any]) -> None:
    key = IssuerKey.from_spki(h(vector["pkS"]))
    challenge = TokenChallenge.from_bytes(h(vector["token_challenge"]))
    result = verify_token(
        h(vector["token"]), keys=KeyRing([TrustedKey(ISSUER, key)]), challenges=[challenge]
    )
    assert result.issuer_name == ISSUER
    assert result.nonce == h(vector["nonce"])
    assert result.token_key_id == key.token_key_id
    assert result.challenge is challenge


@pytest.mark.parametrize("vector", TYPE2_ISSUANCE, ids=lambda v: v["nonce"][:8])
def test_rfc9578_type2_exact_bytes(vector: dict[str, Any]) -> None:
    key = IssuerKey.from_spki(h(vector["pkS"]))
    raw_challenge = h(vector["token_challenge"])
    challenge = TokenChallenge.from_bytes(raw_challenge)
    assert challenge.to_bytes() == raw_challenge
    raw_token = h(vector["token"])
    token = Token.from_bytes(raw_token, key.authenticator_length)
    assert token.to_bytes() == raw_token
    assert len(raw_token) == 354
    assert token.challenge_digest == challenge.digest
    assert token.nonce == h(vector["nonce"])
    # token_key_id is SHA-256 of the bytes exactly as published.
    assert token.token_key_id.hex().startswith("ca572f89")
    assert key.token_key_id == token.token_key_id


@pytest.mark.parametrize("vector", TYPE2_ISSUANCE, ids=lambda v: v["nonce"][:8])
def test_rfc9578_type2_every_flipped_byte_is_refused(vector: dict[str, Any]) -> None:
    key = IssuerKey.from_spki(h(vector["pkS"]))
    ring = KeyRing([TrustedKey(ISSUER, key)])
    challenge = TokenChallenge.from_bytes(h(vector["token_challenge"]))
    raw = h(vector["token"])
    expected: dict[range, set[Reason]] = {
        range(0, 2): {Reason.UNSUPPORTED_TYPE},
        range(2, 34): {Reason.BAD_SIGNATURE},  # the nonce is only covered by the signature
        range(34, 66): {Reason.CHALLENGE_MISMATCH},
        range(66, 98): {Reason.UNKNOWN_KEY},
        range(98, 354): {Reason.BAD_SIGNATURE},
    }
    for span, reasons in expected.items():
        for i in span:
            bad = bytearray(raw)
            bad[i] ^= 0x01
            with pytest.raises(TokenError) as info:
                verify_token(bytes(bad), keys=ring, challenges=[challenge])
            assert info.value.reason in reasons, (i, info.value.reason)


@pytest.mark.parametrize("vector", CHALLENGE_REDEMPTION, ids=lambda v: v["comment"][:60])
def test_rfc9577_challenge_and_authenticator_input(vector: dict[str, Any]) -> None:
    token_type = int(vector["token_type"], 16)
    expected_input = h(vector["token_authenticator_input"])
    if token_type in GREASE_TOKEN_TYPES:
        # Vector 6: grease; the body is random and must never be parsed as a real token.
        assert expected_input[:2] == b"\x00\x00"
        return
    origin = h(vector["origin_info"]).decode()
    challenge = TokenChallenge(
        token_type=token_type,
        issuer_name=h(vector["issuer_name"]).decode(),
        redemption_context=h(vector["redemption_context"]),
        origin_info=tuple(origin.split(",")) if origin else (),
    )
    assert TokenChallenge.from_bytes(challenge.to_bytes()) == challenge
    token = Token(
        token_type=token_type,
        nonce=h(vector["nonce"]),
        challenge_digest=challenge.digest,
        token_key_id=h(vector["token_key_id"]),
        authenticator=b"\x00" * 256,
    )
    assert token.authenticator_input == expected_input


def _expected_params(vector: dict[str, Any]) -> list[tuple[int, bytes, bytes, int | None]]:
    out = []
    for i in range(4):
        if f"token-challenge-{i}" in vector:
            out.append(
                (
                    vector[f"token-type-{i}"],
                    h(vector[f"token-challenge-{i}"]),
                    h(vector[f"token-key-{i}"]),
                    vector.get(f"max-age-{i}"),
                )
            )
    return out


@pytest.mark.parametrize(
    "vector", HTTP_HEADERS + HTTP_HEADERS_UNQUOTED, ids=["a2-1", "a2-2", "a2-3", "unquoted"]
)
def test_rfc9577_www_authenticate_parses(vector: dict[str, Any]) -> None:
    parsed = parse_www_authenticate(vector["WWW-Authenticate"])
    expected = _expected_params(vector)
    assert [(p.challenge, p.token_key, p.max_age) for p in parsed] == [
        (c, k, m) for _, c, k, m in expected
    ]
    for (token_type, raw, _, _), params in zip(expected, parsed, strict=True):
        assert int.from_bytes(params.challenge[:2], "big") == token_type
        if token_type not in GREASE_TOKEN_TYPES:
            assert TokenChallenge.from_bytes(raw).to_bytes() == raw


@pytest.mark.parametrize("quoted", [True, False])
@pytest.mark.parametrize(
    "vector", HTTP_HEADERS + HTTP_HEADERS_UNQUOTED, ids=["a2-1", "a2-2", "a2-3", "unquoted"]
)
def test_rfc9577_www_authenticate_builds(vector: dict[str, Any], quoted: bool) -> None:
    expected = _expected_params(vector)
    built = build_www_authenticate(
        [ChallengeParams(c, k, m) for _, c, k, m in expected], quoted=quoted
    )
    q = '"' if quoted else ""
    for _, challenge, key, max_age in expected:
        # The vector's encodings appear byte for byte: padded base64url.
        assert f"challenge={q}{b64url_encode(challenge)}{q}" in built
        assert f"token-key={q}{b64url_encode(key)}{q}" in built
        if max_age is not None:
            assert f"max-age={q}{max_age}{q}" in built
    # Our encodings equal the vector's text exactly (padded base64url, same alphabet).
    raw_items = [
        i
        for i in parse_auth_items(vector["WWW-Authenticate"], max_length=1 << 16)
        if i.is_private_token
    ]
    assert [i.params["challenge"] for i in raw_items] == [
        b64url_encode(c) for _, c, _, _ in expected
    ]
    reparsed = parse_www_authenticate(built)
    assert [(p.challenge, p.token_key, p.max_age) for p in reparsed] == [
        (c, k, m) for _, c, k, m in expected
    ]


def test_rfc9577_a2_1_header_is_what_we_emit() -> None:
    """Vector A.2 #1 has no extra parameters: our quoted output equals it exactly."""
    vector = HTTP_HEADERS[0]
    ((_, challenge, key, max_age),) = _expected_params(vector)
    assert build_www_authenticate([ChallengeParams(challenge, key, max_age)]) == vector[
        "WWW-Authenticate"
    ].replace('",unknownChallengeAttribute="ignore-me"', '"')


def test_unquoted_vector_is_what_bare_mode_emits() -> None:
    vector = HTTP_HEADERS_UNQUOTED[0]
    ((_, challenge, key, max_age),) = _expected_params(vector)
    built = build_www_authenticate([ChallengeParams(challenge, key, max_age)], quoted=False)
    assert built == vector["WWW-Authenticate"].replace(",unknownChallengeAttribute=ignore-me", "")


def test_type1_vector_token_is_refused_as_unsupported() -> None:
    key = IssuerKey.from_spki(h(TYPE2_ISSUANCE[0]["pkS"]))
    from .vectors import load

    type1 = load("rfc9578-type1-voprf-issuance.json")[0]
    challenge = TokenChallenge.from_bytes(h(type1["token_challenge"]))
    with pytest.raises(TokenError) as info:
        verify_token(
            h(type1["token"]), keys=KeyRing([TrustedKey(ISSUER, key)]), challenges=[challenge]
        )
    assert info.value.reason is Reason.UNSUPPORTED_TYPE
