"""TokenChallenge and Token: exact bytes in both directions, and every refusal."""

from __future__ import annotations

import hashlib

import pytest

from pat_middleware import DecodeError, Token, TokenChallenge
from pat_middleware.core.wire import peek_token_type

CONTEXT = bytes(range(32))

# (challenge, exact encoding)
ROUND_TRIPS = [
    (TokenChallenge(2, "i.example"), "00020009" + b"i.example".hex() + "000000"),
    (
        TokenChallenge(2, "i.example", CONTEXT, ("o.example",)),
        "00020009" + b"i.example".hex() + "20" + CONTEXT.hex() + "0009" + b"o.example".hex(),
    ),
    (
        TokenChallenge(1, "issuer.example:8443", b"", ("b.example", "a.example")),
        "00010013" + b"issuer.example:8443".hex() + "000013" + b"b.example,a.example".hex(),
    ),
]


@pytest.mark.parametrize(("challenge", "encoded"), ROUND_TRIPS)
def test_challenge_round_trip(challenge: TokenChallenge, encoded: str) -> None:
    raw = bytes.fromhex(encoded)
    assert challenge.to_bytes() == raw
    assert TokenChallenge.from_bytes(raw) == challenge
    assert challenge.digest == hashlib.sha256(raw).digest()


def test_origin_info_order_is_part_of_the_digest() -> None:
    a = TokenChallenge(2, "i.example", b"", ("a.example", "b.example"))
    b = TokenChallenge(2, "i.example", b"", ("b.example", "a.example"))
    assert a.digest != b.digest


def test_smallest_challenge_is_eight_bytes() -> None:
    assert len(TokenChallenge(2, "i").to_bytes()) == 8


BAD_CHALLENGE_BYTES = {
    "empty": "",
    "type only": "0002",
    "empty issuer": "00020000000000",
    "issuer length past end": "000200056161000000",
    "context 1 byte": "000200016101ff0000",
    "context 31 bytes": "00020001611f" + "ff" * 31 + "0000",
    "context 33 bytes": "000200016121" + "ff" * 33 + "0000",
    "trailing byte": "000200016100000000",
    "origin truncated": "00020001610000056161",
    "origin empty name": "0002000161000003" + b"a,,".hex(),
    "origin leading comma": "0002000161000002" + b",a".hex(),
    "issuer with space": "00020003" + b"a b".hex() + "000000",
    "issuer non-ascii": "00020002c3a9000000",
    "issuer userinfo": "00020006" + b"u@host".hex() + "000000",
    "issuer with comma": "00020003" + b"a,b".hex() + "000000",
}


@pytest.mark.parametrize("encoded", BAD_CHALLENGE_BYTES.values(), ids=BAD_CHALLENGE_BYTES.keys())
def test_challenge_refuses(encoded: str) -> None:
    with pytest.raises(DecodeError):
        TokenChallenge.from_bytes(bytes.fromhex(encoded))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"token_type": 0x10000, "issuer_name": "i"},
        {"token_type": -1, "issuer_name": "i"},
        {"token_type": 2, "issuer_name": ""},
        {"token_type": 2, "issuer_name": "é"},
        {"token_type": 2, "issuer_name": "i", "redemption_context": b"x" * 16},
        {"token_type": 2, "issuer_name": "i", "origin_info": ("",)},
        {"token_type": 2, "issuer_name": "i", "origin_info": ("a,b",)},
        {"token_type": 2, "issuer_name": "i" * 65536},
    ],
)
def test_challenge_constructor_validates(kwargs: dict[str, object]) -> None:
    with pytest.raises(DecodeError):
        TokenChallenge(**kwargs)  # type: ignore[arg-type]


def _token_bytes(nk: int = 256) -> bytes:
    return b"\x00\x02" + b"\x11" * 32 + b"\x22" * 32 + b"\x33" * 32 + b"\x44" * nk


@pytest.mark.parametrize("nk", [256, 512])
def test_token_round_trip(nk: int) -> None:
    raw = _token_bytes(nk)
    token = Token.from_bytes(raw, nk)
    assert token.to_bytes() == raw
    assert token.token_type == 2
    assert token.nonce == b"\x11" * 32
    assert token.challenge_digest == b"\x22" * 32
    assert token.token_key_id == b"\x33" * 32
    assert token.authenticator == b"\x44" * nk
    assert token.authenticator_input == raw[:98]


@pytest.mark.parametrize("length", [0, 1, 97, 98, 353, 355, 610])
def test_token_wrong_length(length: int) -> None:
    with pytest.raises(DecodeError):
        Token.from_bytes(_token_bytes()[:length].ljust(length, b"\x00"), 256)


def test_token_repr_hides_nonce_and_authenticator() -> None:
    token = Token.from_bytes(_token_bytes(), 256)
    text = repr(token)
    assert "11" * 8 not in text
    assert "44" * 8 not in text
    assert "33" * 32 in text


def test_challenge_repr_hides_context() -> None:
    assert CONTEXT.hex()[:16] not in repr(TokenChallenge(2, "i", CONTEXT))
    assert "\\x00\\x01\\x02" not in repr(TokenChallenge(2, "i", CONTEXT))


def test_peek_token_type() -> None:
    assert peek_token_type(b"\xab\xcd") == 0xABCD
    with pytest.raises(DecodeError):
        peek_token_type(b"\x00")
