"""Property tests: no input to any parser raises anything but the library's own error."""

from __future__ import annotations

import contextlib

from hypothesis import example, given
from hypothesis import strategies as st

from pat_middleware import (
    ChallengeParams,
    IssuerKey,
    KeyRing,
    PrivateTokenError,
    Token,
    TokenChallenge,
    TokenError,
    TrustedKey,
    b64_decode,
    b64url_encode,
    build_www_authenticate,
    parse_authorization,
    parse_www_authenticate,
    verify_token,
)
from pat_middleware.core.headers import parse_auth_items

from .vectors import TYPE2_ISSUANCE, h

RFC_KEY = IssuerKey.from_spki(h(TYPE2_ISSUANCE[0]["pkS"]))
RING = KeyRing([TrustedKey("issuer.example", RFC_KEY)])
RFC_CHALLENGE = TokenChallenge.from_bytes(h(TYPE2_ISSUANCE[0]["token_challenge"]))
RFC_TOKEN = h(TYPE2_ISSUANCE[0]["token"])

header_text = st.text(
    alphabet=st.sampled_from(list('PrivateToken token=challenge"\\,;= \t+/-_AQ=é\x00'))
    | st.characters(),
    max_size=300,
)


@given(st.binary(max_size=300))
@example(b"\x00\x02\x00\x01a\x20")
def test_challenge_from_bytes(data: bytes) -> None:
    try:
        challenge = TokenChallenge.from_bytes(data)
    except PrivateTokenError:
        return
    assert challenge.to_bytes() == data


@given(st.binary(max_size=700), st.sampled_from([256, 512]))
def test_token_from_bytes(data: bytes, nk: int) -> None:
    try:
        token = Token.from_bytes(data, nk)
    except PrivateTokenError:
        return
    assert token.to_bytes() == data


@given(st.binary(max_size=700))
@example(RFC_TOKEN)
def test_verify_token_raises_only_token_errors(data: bytes) -> None:
    try:
        verify_token(data, keys=RING, challenges=[RFC_CHALLENGE])
    except TokenError:
        return
    assert data == RFC_TOKEN


@given(st.binary(min_size=1, max_size=354), st.integers(0, 353))
def test_mutated_rfc_token_never_verifies(patch: bytes, at: int) -> None:
    mutated = bytearray(RFC_TOKEN)
    mutated[at : at + len(patch)] = patch
    data = bytes(mutated)
    try:
        verify_token(data, keys=RING, challenges=[RFC_CHALLENGE])
    except TokenError:
        return
    assert data == RFC_TOKEN


@given(st.binary(max_size=1200))
def test_issuer_key_from_spki(data: bytes) -> None:
    with contextlib.suppress(PrivateTokenError):
        IssuerKey.from_spki(data, allow_4096=True)


@given(st.integers(0, 341), st.integers(0, 255))
def test_one_byte_changed_spki_is_refused_or_a_different_key(at: int, value: int) -> None:
    raw = bytearray(RFC_KEY.spki)
    raw[at] = value
    try:
        key = IssuerKey.from_spki(bytes(raw))
    except PrivateTokenError:
        return
    # Only a change inside the modulus/exponent can still load, as another key.
    assert at >= 72 or bytes(raw) == RFC_KEY.spki
    assert key.token_key_id != RFC_KEY.token_key_id or bytes(raw) == RFC_KEY.spki


@given(st.text(max_size=2000) | st.binary(max_size=200).map(lambda b: b.decode("latin-1")))
def test_issuer_key_from_base64_and_pem(text: str) -> None:
    for load in (IssuerKey.from_base64, IssuerKey.from_pem):
        with contextlib.suppress(PrivateTokenError):
            load(text)


@given(header_text)
@example('PrivateToken token="')
@example("PrivateToken token=\\")
@example('PrivateToken token="\\')
def test_parse_authorization(value: str) -> None:
    with contextlib.suppress(PrivateTokenError):
        parse_authorization(value)


@given(header_text)
def test_parse_www_authenticate(value: str) -> None:
    with contextlib.suppress(PrivateTokenError):
        parse_www_authenticate(value)


@given(header_text)
def test_parse_auth_items(value: str) -> None:
    with contextlib.suppress(PrivateTokenError):
        parse_auth_items(value, max_length=1000)


@given(st.text(max_size=200))
def test_b64_decode(value: str) -> None:
    with contextlib.suppress(PrivateTokenError):
        b64_decode(value)


@given(st.binary(min_size=1, max_size=200))
def test_b64_round_trip(data: bytes) -> None:
    assert b64_decode(b64url_encode(data)) == data
    assert b64_decode(b64url_encode(data, padded=False)) == data


@given(
    st.lists(
        st.tuples(
            st.binary(min_size=1, max_size=80),
            st.none() | st.binary(min_size=1, max_size=80),
            st.none() | st.integers(0, 10**9),
        ),
        min_size=1,
        max_size=5,
    ),
    st.booleans(),
)
def test_www_authenticate_round_trip(
    items: list[tuple[bytes, bytes | None, int | None]], quoted: bool
) -> None:
    params = [ChallengeParams(*i) for i in items]
    assert parse_www_authenticate(build_www_authenticate(params, quoted=quoted)) == params


challenge_names = st.from_regex(r"[a-z0-9.-]{1,20}(:[0-9]{1,5})?", fullmatch=True)


@given(
    st.integers(0, 0xFFFF),
    challenge_names,
    st.sampled_from([b"", bytes(32), b"\xff" * 32]),
    st.lists(challenge_names, max_size=4).map(tuple),
)
def test_challenge_round_trip(
    token_type: int, issuer: str, context: bytes, origin: tuple[str, ...]
) -> None:
    challenge = TokenChallenge(token_type, issuer, context, origin)
    assert TokenChallenge.from_bytes(challenge.to_bytes()) == challenge
