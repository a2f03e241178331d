"""Type-1 (VOPRF P-384) issuance, RFC 9578 §5: every Appendix A.1 vector through the
issuer and client modules, exact bytes both ways, malformed input, and the issuer over HTTP
beside type-2 keys."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import given
from hypothesis import strategies as st

from pat_middleware.core.directory import parse_directory
from pat_middleware.core.keyring import KeyRing, TrustedKey
from pat_middleware.core.verify import verify_token
from pat_middleware.core.wire import Token, TokenChallenge
from pat_middleware.errors import ConfigurationError, DecodeError, IssuanceError
from pat_middleware.issuer import (
    TOKEN_REQUEST_MEDIA_TYPE,
    Issuer,
    SigningKey,
    issue_token_locally,
    start_issuance,
)
from pat_middleware.issuer.client import fetch_token, fetch_token_async
from pat_middleware.issuer.server import create_issuer_app
from pat_middleware.issuer.voprf import (
    VOPRF_TOKEN_REQUEST_LENGTH,
    VOPRF_TOKEN_RESPONSE_LENGTH,
    VOPRFIssuingKey,
    VOPRFTokenRequest,
    VOPRFTokenResponse,
    begin_voprf_issuance,
)
from pat_middleware.tokens.blind_rsa import IssuerKey, encode_pss_spki
from pat_middleware.tokens.oprf import deserialize_scalar
from pat_middleware.tokens.voprf import VOPRFPublicKey, VOPRFTokenKey
from tests._servers import serve_asgi
from tests.vectors import h, load

TYPE1 = load("rfc9578-type1-voprf-issuance.json")
VECTORS = pytest.mark.parametrize("vector", TYPE1, ids=[f"A.1-{i + 1}" for i in range(len(TYPE1))])
NAME = "issuer.example"


def _parts(vector: dict[str, Any]) -> tuple[VOPRFTokenKey, TokenChallenge]:
    return (
        VOPRFTokenKey.from_scalar(h(vector["skS"])),
        TokenChallenge.from_bytes(h(vector["token_challenge"])),
    )


@pytest.fixture(scope="module")
def p384() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP384R1())


@pytest.fixture(scope="module")
def mixed(p384: ec.EllipticCurvePrivateKey, rsa_2048: rsa.RSAPrivateKey) -> Issuer:
    """One issuer serving a type-1 and a type-2 key."""
    return Issuer(NAME, p384, rsa_2048)


def _challenge(token_type: int) -> TokenChallenge:
    return TokenChallenge(token_type, NAME, secrets.token_bytes(32), ("origin.example",))


# ------------------------------------------------------------------------- the vectors


@VECTORS
def test_vector_token_request_exact_bytes(vector: dict[str, Any]) -> None:
    key, challenge = _parts(vector)
    nonce = h(vector["nonce"])
    request, state = begin_voprf_issuance(
        challenge, key.public, nonce=nonce, blind_scalar=deserialize_scalar(h(vector["blind"]))
    )
    assert request.to_bytes() == h(vector["token_request"])
    assert len(request.to_bytes()) == VOPRF_TOKEN_REQUEST_LENGTH == 52
    assert VOPRFTokenRequest.from_bytes(h(vector["token_request"])) == request
    assert state.token_input == h(vector["token"])[:98]


@VECTORS
def test_vector_token_response_finalizes_to_the_vector_token(vector: dict[str, Any]) -> None:
    key, challenge = _parts(vector)
    _, state = begin_voprf_issuance(
        challenge,
        key.public,
        nonce=h(vector["nonce"]),
        blind_scalar=deserialize_scalar(h(vector["blind"])),
    )
    response = h(vector["token_response"])
    assert len(response) == VOPRF_TOKEN_RESPONSE_LENGTH == 145
    parsed = VOPRFTokenResponse.from_bytes(response)
    assert parsed.to_bytes() == response
    token = state.finalize(response)  # verifies the vector's DLEQ proof first
    assert token.to_bytes() == h(vector["token"]) and len(token.to_bytes()) == 146


@VECTORS
def test_vector_issuer_evaluates_exactly(vector: dict[str, Any]) -> None:
    key, challenge = _parts(vector)
    issuing = VOPRFIssuingKey(key)
    response = issuing.issue(h(vector["token_request"]))
    # The evaluated element is deterministic; the proof's nonce is fresh randomness.
    assert response[:49] == h(vector["token_response"])[:49]
    assert response[49:] != h(vector["token_response"])[49:]
    _, state = begin_voprf_issuance(
        challenge,
        key.public,
        nonce=h(vector["nonce"]),
        blind_scalar=deserialize_scalar(h(vector["blind"])),
    )
    assert state.finalize(response).to_bytes() == h(vector["token"])


@VECTORS
def test_vector_through_an_issuer_and_the_origin_check(vector: dict[str, Any]) -> None:
    key, challenge = _parts(vector)
    issuer = Issuer(NAME, key.secret_key.private_key)
    assert issuer.published_keys == (key.public,)
    answer = issuer.issue(h(vector["token_request"]))
    assert answer[:49] == h(vector["token_response"])[:49]
    token = issue_token_locally(issuer, challenge)
    ring = KeyRing([TrustedKey(NAME, key)])
    assert verify_token(token.to_bytes(), keys=ring, challenges=[challenge]).token_type == 1


# ------------------------------------------------------------------- the issuer's answers


def test_directory_lists_the_49_byte_key_with_type_1(mixed: Issuer) -> None:
    document = json.loads(mixed.directory_bytes())
    assert [entry["token-type"] for entry in document["token-keys"]] == [1, 2]
    parsed = parse_directory(mixed.directory_bytes())
    assert len(parsed.token_keys[0].token_key) == 49
    assert parsed.token_keys[0].token_key_id == mixed.published_keys[0].token_key_id
    assert mixed.token_types == frozenset({1, 2})
    assert mixed.preferred(1) == mixed.published_keys[0]
    assert mixed.preferred_key == mixed.published_keys[1]


def test_mixed_issuer_issues_both_types(mixed: Issuer) -> None:
    for token_type in (1, 2):
        challenge = _challenge(token_type)
        token = issue_token_locally(mixed, challenge)
        key = mixed.preferred(token_type)
        assert token.token_type == token_type and token.token_key_id == key.token_key_id


def _good_request(mixed: Issuer) -> bytes:
    key = mixed.preferred(1)
    assert isinstance(key, VOPRFPublicKey)
    request, _ = begin_voprf_issuance(_challenge(1), key)
    return request.to_bytes()


def test_malformed_type1_requests_are_4xx(mixed: Issuer) -> None:
    good = _good_request(mixed)
    off_curve = good[:3] + b"\x02" + b"\xff" * 48
    cases = [
        (good[:2], 400),
        (good[:-1], 422),  # blinded_msg short
        (good + b"\x00", 422),  # blinded_msg long
        (good[:3] + b"\x04" + good[4:], 422),  # not a compressed point prefix
        (off_curve, 422),
        (good[:2] + bytes([good[2] ^ 0xFF]) + good[3:], 422),  # unknown truncated key id
        (b"\x00\x03" + good[2:], 422),  # a type this issuer does not issue
    ]
    for body, status in cases:
        with pytest.raises(IssuanceError) as info:
            mixed.issue(body)
        assert info.value.status == status, body.hex()


def test_an_issuer_without_type1_keys_refuses_type1_requests(rsa_2048: rsa.RSAPrivateKey) -> None:
    with pytest.raises(IssuanceError) as info:
        Issuer(NAME, rsa_2048).issue(b"\x00\x01\x00" + bytes(49))
    assert info.value.status == 422


_HYPOTHESIS_ISSUER = Issuer(NAME, ec.generate_private_key(ec.SECP384R1()))
_TRUNCATED_ID = bytes([_HYPOTHESIS_ISSUER.published_keys[0].token_key_id[-1]])


def _issue_or_4xx(data: bytes) -> None:
    try:
        response = _HYPOTHESIS_ISSUER.issue(data)
    except IssuanceError as e:
        assert 400 <= e.status < 500
        return
    assert len(response) == VOPRF_TOKEN_RESPONSE_LENGTH


@given(st.binary(max_size=200))
def test_issue_raises_only_issuance_errors_with_4xx(data: bytes) -> None:
    _issue_or_4xx(data)


@given(st.binary(min_size=0, max_size=60))
def test_issue_type1_shaped_input_for_a_known_key(body: bytes) -> None:
    """Past the header checks: blinded_msg of any size and content."""
    _issue_or_4xx(b"\x00\x01" + _TRUNCATED_ID + body)


@given(st.binary(max_size=80))
def test_request_parser_raises_only_decode_error(data: bytes) -> None:
    try:
        parsed = VOPRFTokenRequest.from_bytes(data)
    except DecodeError:
        return
    assert parsed.to_bytes() == data


@given(st.binary(min_size=0, max_size=200))
def test_response_parser_raises_only_decode_error(data: bytes) -> None:
    try:
        parsed = VOPRFTokenResponse.from_bytes(data)
    except DecodeError:
        return
    assert parsed.to_bytes() == data


@given(st.binary(min_size=145, max_size=145))
def test_finalize_raises_only_the_library_errors(data: bytes) -> None:
    try:
        _HYPOTHESIS_STATE.finalize(data)
    except (DecodeError, IssuanceError):
        return
    raise AssertionError("a random response finalized")


_HYPOTHESIS_STATE = begin_voprf_issuance(_challenge(1), VOPRFTokenKey.generate().public)[1]


# ------------------------------------------------------------------------- the client


def test_client_refuses_a_proof_that_does_not_verify(mixed: Issuer) -> None:
    key = mixed.preferred(1)
    assert isinstance(key, VOPRFPublicKey)
    request, state = begin_voprf_issuance(_challenge(1), key)
    response = mixed.issue(request.to_bytes())
    tampered_proof = response[:-1] + bytes([response[-1] ^ 1])
    other = VOPRFIssuingKey(VOPRFTokenKey.generate()).issue(request.to_bytes())
    for bad in (tampered_proof, other):
        with pytest.raises((IssuanceError, DecodeError)) as info:
            state.finalize(bad)
        if isinstance(info.value, IssuanceError):
            assert info.value.status == 502
    with pytest.raises(IssuanceError, match="does not verify"):
        state.finalize(other)  # a valid proof, but for another key
    with pytest.raises(DecodeError):
        state.finalize(response[:-1])
    assert state.finalize(response).token_key_id == key.token_key_id


def test_start_issuance_dispatches_on_the_key(mixed: Issuer) -> None:
    key1, key2 = mixed.preferred(1), mixed.preferred(2)
    request1, _ = start_issuance(_challenge(1), key1)
    request2, _ = start_issuance(_challenge(2), key2)
    assert (request1[:2], len(request1)) == (b"\x00\x01", 52)
    assert (request2[:2], len(request2)) == (b"\x00\x02", 259)
    with pytest.raises(IssuanceError, match="type-2 challenge with a type-1 key"):
        start_issuance(_challenge(2), key1)
    with pytest.raises(IssuanceError):
        begin_voprf_issuance(_challenge(2), VOPRFTokenKey.generate().public)


def test_issuer_configuration(p384: ec.EllipticCurvePrivateKey) -> None:
    with pytest.raises(ConfigurationError, match="P-384"):
        Issuer(NAME, ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(ConfigurationError, match="listed twice"):
        Issuer(NAME, p384, p384)
    assert "P-384" in repr(SigningKey(p384))
    with pytest.raises(ConfigurationError, match="no type-2"):
        Issuer(NAME, p384).preferred_key  # noqa: B018


def test_truncated_key_ids_collide_per_type_only(rsa_2048: rsa.RSAPrivateKey) -> None:
    rsa_id = IssuerKey.from_spki(encode_pss_spki(rsa_2048.public_key())).token_key_id[-1]
    same: list[ec.EllipticCurvePrivateKey] = []
    while len(same) < 2:
        candidate = ec.generate_private_key(ec.SECP384R1())
        if VOPRFTokenKey.from_private_key(candidate).token_key_id[-1] == rsa_id:
            same.append(candidate)
    Issuer(NAME, rsa_2048, same[0])  # types differ: no collision
    with pytest.raises(ConfigurationError, match="two type-1 keys share"):
        Issuer(NAME, same[0], same[1])


# ------------------------------------------------------------------------------ HTTP


@pytest.fixture(scope="module")
def base_url(mixed: Issuer) -> Iterator[str]:
    with serve_asgi(create_issuer_app(mixed)) as url:
        yield url


def test_fetch_type1_token_over_http(mixed: Issuer, base_url: str) -> None:
    challenge = _challenge(1)
    key = mixed.preferred(1)
    with httpx.Client(timeout=10) as client:
        token = fetch_token(challenge, key, base_url, client)
    assert isinstance(token, Token) and token.token_type == 1
    assert token.challenge_digest == challenge.digest and token.token_key_id == key.token_key_id


def test_fetch_both_types_over_http_async(mixed: Issuer, base_url: str) -> None:
    async def run() -> list[Token]:
        async with httpx.AsyncClient(timeout=10) as client:
            return [
                await fetch_token_async(_challenge(t), mixed.preferred(t), base_url, client)
                for t in (1, 2)
            ]

    assert [token.token_type for token in asyncio.run(run())] == [1, 2]


def test_malformed_type1_requests_over_http_are_4xx(mixed: Issuer, base_url: str) -> None:
    good = _good_request(mixed)
    with httpx.Client(timeout=10) as client:
        for body in (good[:-1], good[:3] + b"\x05" + good[4:], b"\x00\x01", good + b"x" * 2000):
            answer = client.post(
                base_url + "/token-request",
                content=body,
                headers={"Content-Type": TOKEN_REQUEST_MEDIA_TYPE},
            )
            assert 400 <= answer.status_code < 500, (body.hex(), answer.status_code)
            assert "Traceback" not in answer.text
