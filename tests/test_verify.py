"""verify_token: each step in spec order, each refusal with its reason."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from pat_middleware import (
    IssuerKey,
    KeyRing,
    Reason,
    TokenChallenge,
    TokenError,
    TrustedKey,
    encode_pss_spki,
    verify_authenticator,
    verify_token,
)

from .conftest import sign_token

ISSUER = "issuer.example"
CHALLENGE = TokenChallenge(2, ISSUER, bytes(32), ("origin.example",))


@pytest.fixture(scope="module")
def ring(issuer_key: IssuerKey) -> KeyRing:
    return KeyRing([TrustedKey(ISSUER, issuer_key)])


def _reason(data: bytes, ring: KeyRing, challenges: list[TokenChallenge]) -> Reason:
    with pytest.raises(TokenError) as info:
        verify_token(data, keys=ring, challenges=challenges)
    return info.value.reason


def test_valid_token(rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey, ring: KeyRing) -> None:
    token = sign_token(rsa_2048, issuer_key, CHALLENGE, nonce=b"\x07" * 32)
    result = verify_token(token, keys=ring, challenges=[CHALLENGE])
    assert (result.issuer_name, result.token_type, result.nonce) == (ISSUER, 2, b"\x07" * 32)
    assert result.token_key_id == issuer_key.token_key_id


def test_matching_challenge_among_several(
    rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey, ring: KeyRing
) -> None:
    others = [TokenChallenge(2, ISSUER, bytes([i]) * 32) for i in range(1, 5)]
    token = sign_token(rsa_2048, issuer_key, CHALLENGE)
    assert verify_token(token, keys=ring, challenges=[*others, CHALLENGE]).challenge == CHALLENGE
    assert _reason(token, ring, others) is Reason.CHALLENGE_MISMATCH
    assert _reason(token, ring, []) is Reason.CHALLENGE_MISMATCH


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", Reason.MALFORMED),
        (b"\x00", Reason.MALFORMED),
        (b"\x00\x00" + bytes(352), Reason.UNSUPPORTED_TYPE),  # grease
        (b"\x5a\x63" + bytes(352), Reason.UNSUPPORTED_TYPE),  # grease
        (b"\x00\x01" + bytes(144), Reason.UNSUPPORTED_TYPE),  # VOPRF: needs the issuer secret
        (b"\x00\x03" + bytes(352), Reason.UNSUPPORTED_TYPE),
        (b"\x00\x02", Reason.WRONG_LENGTH),
        (b"\x00\x02" + bytes(95), Reason.WRONG_LENGTH),
        (b"\x00\x02" + bytes(352), Reason.UNKNOWN_KEY),
    ],
)
def test_early_refusals(data: bytes, reason: Reason, ring: KeyRing) -> None:
    assert _reason(data, ring, [CHALLENGE]) is reason


@pytest.mark.parametrize("delta", [-1, 1, 256])
def test_wrong_length_for_the_key(
    delta: int, rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey, ring: KeyRing
) -> None:
    token = sign_token(rsa_2048, issuer_key, CHALLENGE)
    bad = token[:delta] if delta < 0 else token + bytes(delta)
    assert _reason(bad, ring, [CHALLENGE]) is Reason.WRONG_LENGTH


def test_other_issuers_key_is_unknown(other_rsa_2048: rsa.RSAPrivateKey, ring: KeyRing) -> None:
    other = IssuerKey.from_spki(encode_pss_spki(other_rsa_2048.public_key()))
    token = sign_token(other_rsa_2048, other, CHALLENGE)
    assert _reason(token, ring, [CHALLENGE]) is Reason.UNKNOWN_KEY


def test_signature_by_another_key_under_our_key_id(
    other_rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey, ring: KeyRing
) -> None:
    forged = sign_token(other_rsa_2048, issuer_key, CHALLENGE)
    assert _reason(forged, ring, [CHALLENGE]) is Reason.BAD_SIGNATURE


def test_challenge_naming_another_issuer_is_refused(
    rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey, ring: KeyRing
) -> None:
    elsewhere = TokenChallenge(2, "other-issuer.example", bytes(32), ("origin.example",))
    token = sign_token(rsa_2048, issuer_key, elsewhere)
    assert _reason(token, ring, [elsewhere]) is Reason.CHALLENGE_MISMATCH


def test_issuer_names_compare_case_insensitively(
    rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey
) -> None:
    ring = KeyRing([TrustedKey("Issuer.Example", issuer_key)])
    token = sign_token(rsa_2048, issuer_key, CHALLENGE)
    assert verify_token(token, keys=ring, challenges=[CHALLENGE]).issuer_name == "Issuer.Example"


def test_challenge_of_another_type_is_refused(
    rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey, ring: KeyRing
) -> None:
    type1 = TokenChallenge(1, ISSUER, bytes(32), ("origin.example",))
    token = sign_token(rsa_2048, issuer_key, type1)
    assert _reason(token, ring, [type1]) is Reason.CHALLENGE_MISMATCH


def test_4096_tokens(rsa_4096: rsa.RSAPrivateKey) -> None:
    key = IssuerKey.from_spki(encode_pss_spki(rsa_4096.public_key()), allow_4096=True)
    token = sign_token(rsa_4096, key, CHALLENGE)
    assert len(token) == 610
    ring = KeyRing([TrustedKey(ISSUER, key)])
    assert verify_token(token, keys=ring, challenges=[CHALLENGE]).key is key
    assert _reason(token[:354], ring, [CHALLENGE]) is Reason.WRONG_LENGTH


def test_4096_token_refused_when_not_enabled(rsa_4096: rsa.RSAPrivateKey, ring: KeyRing) -> None:
    # Without allow_4096 the key never enters the ring, so its tokens have no key.
    key = IssuerKey.from_spki(encode_pss_spki(rsa_4096.public_key()), allow_4096=True)
    token = sign_token(rsa_4096, key, CHALLENGE)
    assert _reason(token, ring, [CHALLENGE]) is Reason.UNKNOWN_KEY


def test_allowed_types_setting(
    rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey, ring: KeyRing
) -> None:
    token = sign_token(rsa_2048, issuer_key, CHALLENGE)
    with pytest.raises(TokenError) as info:
        verify_token(token, keys=ring, challenges=[CHALLENGE], allowed_types=frozenset({1}))
    assert info.value.reason is Reason.UNSUPPORTED_TYPE


def test_primitive_returns_bool(rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey) -> None:
    token = sign_token(rsa_2048, issuer_key, CHALLENGE)
    assert verify_authenticator(issuer_key, token[:98], token[98:]) is True
    assert verify_authenticator(issuer_key, token[:97] + b"\xff", token[98:]) is False
    assert verify_authenticator(issuer_key, token[:98], token[98:-1]) is False


def test_a_key_listed_by_two_issuers_verifies_under_the_one_the_challenge_names(
    rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey
) -> None:
    # Another issuer's directory may list our key: it must not capture our tokens.
    ring = KeyRing([TrustedKey("first.example", issuer_key), TrustedKey(ISSUER, issuer_key)])
    assert len(ring) == 2
    token = sign_token(rsa_2048, issuer_key, CHALLENGE)
    assert verify_token(token, keys=ring, challenges=[CHALLENGE]).issuer_name == ISSUER
    first = TokenChallenge(2, "first.example", bytes(32), ("origin.example",))
    token = sign_token(rsa_2048, issuer_key, first)
    assert verify_token(token, keys=ring, challenges=[first]).issuer_name == "first.example"
    third = TokenChallenge(2, "third.example", bytes(32), ("origin.example",))
    token = sign_token(rsa_2048, issuer_key, third)
    assert _reason(token, ring, [third]) is Reason.CHALLENGE_MISMATCH


def test_keyring_deduplicates_and_hides_keys(issuer_key: IssuerKey) -> None:
    ring = KeyRing([TrustedKey(ISSUER, issuer_key), TrustedKey(ISSUER, issuer_key)])
    assert len(ring) == 1
    assert ring.find(issuer_key.token_key_id) is not None
    assert ring.find(bytes(32)) is None
    assert issuer_key.token_key_id.hex() not in repr(ring)


def test_error_message_carries_no_token_bytes(
    rsa_2048: rsa.RSAPrivateKey, issuer_key: IssuerKey, ring: KeyRing
) -> None:
    token = sign_token(rsa_2048, issuer_key, CHALLENGE, nonce=b"\xab" * 32)
    bad = token[:-1] + bytes([token[-1] ^ 1])
    with pytest.raises(TokenError) as info:
        verify_token(bad, keys=ring, challenges=[CHALLENGE])
    assert "ab" * 8 not in str(info.value)
    assert token[98:110].hex() not in str(info.value)
