"""Token type 0x0001 (VOPRF P-384, SHA-384): keys and verification through the token-type
module, against every RFC 9578 Appendix A.1 vector."""

from __future__ import annotations

import hashlib
import logging
import pickle
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given
from hypothesis import strategies as st

from pat_middleware.core.codec import b64url_encode
from pat_middleware.core.keyring import KeyRing, TrustedKey
from pat_middleware.core.keys import TokenKey
from pat_middleware.core.verify import verify_token
from pat_middleware.core.wire import TokenChallenge
from pat_middleware.errors import DecodeError, Reason, TokenError
from pat_middleware.tokens.registry import default_registry
from pat_middleware.tokens.voprf import (
    VOPRF_TOKEN_LENGTH,
    VOPRFPublicKey,
    VOPRFTokenKey,
)
from tests.vectors import h, load

TYPE1 = load("rfc9578-type1-voprf-issuance.json")
VECTORS = pytest.mark.parametrize("vector", TYPE1, ids=[f"A.1-{i + 1}" for i in range(len(TYPE1))])


def _key(vector: dict[str, Any]) -> VOPRFTokenKey:
    return VOPRFTokenKey.from_scalar(h(vector["skS"]))


def _ring(key: TokenKey, name: str = "issuer.example") -> KeyRing:
    return KeyRing([TrustedKey(name, key)])


@VECTORS
def test_vector_key_publishes_the_49_byte_point(vector: dict[str, Any]) -> None:
    key = _key(vector)
    assert key.published == h(vector["pkS"]) and len(key.published) == 49
    assert key.token_key_id == hashlib.sha256(h(vector["pkS"])).digest()
    assert key.token_key == b64url_encode(h(vector["pkS"]))
    token = h(vector["token"])
    assert token[66:98] == key.token_key_id
    # Never the 97-byte form: its hash is not the key id.
    assert hashlib.sha256(key.public.element.uncompressed).digest() != key.token_key_id


@VECTORS
def test_vector_token_verifies_through_the_registry(vector: dict[str, Any]) -> None:
    pem = _key(vector).private_pem()
    key = default_registry()[1].load_private_key(pem)
    challenge = TokenChallenge.from_bytes(h(vector["token_challenge"]))
    token = h(vector["token"])
    assert len(token) == VOPRF_TOKEN_LENGTH == key.token_length
    result = verify_token(token, keys=_ring(key), challenges=[challenge])
    assert (result.token_type, result.issuer_name, result.key) == (1, "issuer.example", key)
    assert result.token.to_bytes() == token
    assert key.verify(token[:98], token[98:])


@VECTORS
def test_vector_public_key_round_trips(vector: dict[str, Any]) -> None:
    public = VOPRFPublicKey.from_bytes(h(vector["pkS"]))
    assert public.published == h(vector["pkS"])
    assert default_registry()[1].load_public_key_text(public.token_key) == public
    assert default_registry()[1].load_public_key_text(public.token_key.rstrip("=")) == public


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


def _expected_reason(at: int) -> set[Reason]:
    if at < 2:
        return {Reason.UNSUPPORTED_TYPE}
    if at < 34:
        return {Reason.BAD_SIGNATURE}  # the nonce: the authenticator no longer matches
    if at < 66:
        return {Reason.CHALLENGE_MISMATCH}
    if at < 98:
        return {Reason.UNKNOWN_KEY}
    return {Reason.BAD_SIGNATURE}


@pytest.mark.parametrize("at", range(VOPRF_TOKEN_LENGTH))
def test_a_token_flipped_in_any_byte_is_refused_for_the_right_reason(at: int) -> None:
    vector = TYPE1[0]
    key = _key(vector)
    challenge = TokenChallenge.from_bytes(h(vector["token_challenge"]))
    with pytest.raises(TokenError) as info:
        verify_token(_flip(h(vector["token"]), at), keys=_ring(key), challenges=[challenge])
    assert info.value.reason in _expected_reason(at)


def test_lengths_and_other_keys_are_refused() -> None:
    vector = TYPE1[0]
    key = _key(vector)
    challenge = TokenChallenge.from_bytes(h(vector["token_challenge"]))
    token = h(vector["token"])
    for bad in (token[:-1], token + b"\x00", token[:98]):
        with pytest.raises(TokenError) as info:
            verify_token(bad, keys=_ring(key), challenges=[challenge])
        assert info.value.reason is Reason.WRONG_LENGTH
    # Another vector's key: its id is another one.
    with pytest.raises(TokenError) as info:
        verify_token(token, keys=_ring(_key(TYPE1[1])), challenges=[challenge])
    assert info.value.reason is Reason.UNKNOWN_KEY
    # A challenge of another issuer name.
    with pytest.raises(TokenError) as info:
        verify_token(token, keys=_ring(key, "other.example"), challenges=[challenge])
    assert info.value.reason is Reason.CHALLENGE_MISMATCH
    # The key refuses authenticators of the wrong length without raising.
    assert not key.verify(token[:98], token[98:-1])
    assert not key.verify(token[:98], b"")


def test_allowed_types_narrow_what_the_ring_verifies() -> None:
    vector = TYPE1[0]
    challenge = TokenChallenge.from_bytes(h(vector["token_challenge"]))
    with pytest.raises(TokenError) as info:
        verify_token(
            h(vector["token"]),
            keys=_ring(_key(vector)),
            challenges=[challenge],
            allowed_types=frozenset({2}),
        )
    assert info.value.reason is Reason.UNSUPPORTED_TYPE


def test_the_secret_is_in_no_repr_log_or_pickle(caplog: pytest.LogCaptureFixture) -> None:
    vector = TYPE1[0]
    key = _key(vector)
    scalar = vector["skS"]
    pem_body = b"".join(key.private_pem().splitlines()[1:-1]).decode()
    caplog.set_level(logging.DEBUG)
    logging.getLogger("pat_middleware").info("key %r %s", key, key)
    shown = " ".join([repr(key), str(key), repr(key.secret_key), caplog.text])
    assert key.token_key_id.hex() in repr(key)
    for secret in (scalar, scalar.upper(), pem_body, str(int(scalar, 16))):
        assert secret not in shown
    with pytest.raises(TypeError):
        pickle.dumps(key)


def test_keys_are_immutable_and_compare_by_public_key() -> None:
    key = _key(TYPE1[0])
    with pytest.raises(AttributeError):
        key._secret = None  # type: ignore[assignment]
    assert key == VOPRFTokenKey.from_pem(key.private_pem())
    assert hash(key) == hash(VOPRFTokenKey.from_pem(key.private_pem().decode()))
    assert key != _key(TYPE1[1]) and key != key.public


def test_pem_loading_refuses_what_is_not_a_p384_private_key() -> None:
    p256 = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    encrypted = ec.generate_private_key(ec.SECP384R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pw"),
    )
    public = (
        VOPRFTokenKey.generate()
        ._secret.private_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    cases = [
        (p256, "on P-384, not secp256r1"),
        (encrypted, "encrypted"),
        (public, "expected a PEM private key"),
        (b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "does not hold"),
        (b"x" * 5000, "longer"),
    ]
    for pem, message in cases:
        with pytest.raises(DecodeError, match=message):
            VOPRFTokenKey.from_pem(pem)


def test_public_keys_refuse_other_sizes_and_points_off_the_curve() -> None:
    good = h(TYPE1[0]["pkS"])
    with pytest.raises(DecodeError, match="49-byte"):
        VOPRFPublicKey.from_bytes(good[:48])
    uncompressed = VOPRFPublicKey.from_bytes(good).element.uncompressed
    with pytest.raises(DecodeError, match="not 97 bytes"):
        VOPRFPublicKey.from_bytes(uncompressed)
    with pytest.raises(DecodeError):
        VOPRFPublicKey.from_bytes(b"\x04" + good[1:])
    with pytest.raises(DecodeError):
        VOPRFPublicKey.from_bytes(b"\x02" + b"\xff" * 48)


@given(st.binary(max_size=120))
def test_public_key_parser_raises_only_decode_error(data: bytes) -> None:
    try:
        key = VOPRFPublicKey.from_bytes(data)
    except DecodeError:
        return
    assert key.published == data and len(data) == 49


@given(st.binary(min_size=48, max_size=48))
def test_scalar_parser_raises_only_decode_error(data: bytes) -> None:
    try:
        key = VOPRFTokenKey.from_scalar(data)
    except DecodeError:
        return
    assert len(key.published) == 49


@given(st.one_of(st.binary(max_size=600), st.text(max_size=600)))
def test_pem_parser_raises_only_decode_error(data: bytes | str) -> None:
    for text in (data, "-----BEGIN PRIVATE KEY-----\n" + str(data) + "\n-----END PRIVATE KEY-----"):
        with pytest.raises(DecodeError):
            VOPRFTokenKey.from_pem(text)


@given(st.one_of(st.text(max_size=120), st.binary(max_size=120).map(b64url_encode)))
def test_token_key_text_parsers_raise_only_decode_error(text: str) -> None:
    for entry in default_registry():
        try:
            key = entry.load_public_key_text(text)
        except DecodeError:
            continue
        assert key.token_type == entry.value


def test_issuer_side_objects_hide_the_secret_and_the_blind() -> None:
    from pat_middleware.issuer import Issuer
    from pat_middleware.issuer.voprf import VOPRFIssuingKey, begin_voprf_issuance

    key = _key(TYPE1[0])
    challenge = TokenChallenge.from_bytes(h(TYPE1[0]["token_challenge"]))
    _, state = begin_voprf_issuance(challenge, key.public)
    issuer = Issuer("issuer.example", key.secret_key.private_key)
    shown = " ".join(repr(x) for x in (VOPRFIssuingKey(key), state, issuer, key.secret_key))
    assert TYPE1[0]["skS"] not in shown and f"{state.blind:x}" not in shown
    assert str(state.blind) not in shown
