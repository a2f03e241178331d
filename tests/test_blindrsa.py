"""RSABSSA-SHA384 (RFC 9474): the four Appendix A vectors, step by step, and the safeguards."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from pat_middleware.errors import IssuanceError
from pat_middleware.tokens import rsabssa as blindrsa
from pat_middleware.tokens.rsabssa import BlindRSAPrivateKey, BlindRSAPublicKey
from tests.vectors import RSABSSA, h

VECTORS = pytest.mark.parametrize("vector", RSABSSA, ids=[v["name"] for v in RSABSSA])


def _key(vector: dict[str, Any]) -> BlindRSAPrivateKey:
    return BlindRSAPrivateKey.from_numbers(
        int(vector["p"], 16), int(vector["q"], 16), int(vector["e"], 16)
    )


@pytest.fixture(scope="module")
def vector_key() -> BlindRSAPrivateKey:
    # All four RFC 9474 vectors use the same 4096-bit key.
    assert len({v["n"] for v in RSABSSA}) == 1
    return _key(RSABSSA[0])


def test_all_four_variants_are_covered() -> None:
    assert {v["name"] for v in RSABSSA} == set(blindrsa.VARIANTS)


@VECTORS
def test_key_numbers(vector: dict[str, Any], vector_key: BlindRSAPrivateKey) -> None:
    assert vector_key.public.n == int(vector["n"], 16)
    assert vector_key.public.e == int(vector["e"], 16)
    assert vector_key.public.modulus_length == len(h(vector["n"])) == 512
    # d may be given modulo phi(n) or lambda(n); both are the same exponent modulo lambda(n).
    m = 0x1234567890ABCDEF
    assert pow(m, int(vector["d"], 16), vector_key.public.n) == pow(
        m, vector_key.d, vector_key.public.n
    )


@VECTORS
def test_prepare(vector: dict[str, Any]) -> None:
    variant = blindrsa.VARIANTS[vector["name"]]
    prefix = h(vector["msg_prefix"])
    assert len(prefix) == (blindrsa.MSG_PREFIX_LENGTH if variant.randomized else 0)
    prepared = blindrsa.prepare(h(vector["msg"]), variant.randomized, msg_prefix=prefix or None)
    assert prepared == h(vector["prepared_msg"])
    # The same prefix, drawn from the rng instead of injected.
    drawn = blindrsa.prepare(h(vector["msg"]), variant.randomized, rng=lambda n: prefix[:n])
    assert drawn == h(vector["prepared_msg"])


@VECTORS
def test_encoded_msg(vector: dict[str, Any], vector_key: BlindRSAPrivateKey) -> None:
    salt = h(vector["salt"])
    assert len(salt) == blindrsa.VARIANTS[vector["name"]].salt_length
    encoded = blindrsa.emsa_pss_encode(
        h(vector["prepared_msg"]), vector_key.public.modulus_bits - 1, salt
    )
    assert encoded == h(vector["encoded_msg"])


@VECTORS
def test_blind_with_injected_salt_and_inv(
    vector: dict[str, Any], vector_key: BlindRSAPrivateKey
) -> None:
    variant = blindrsa.VARIANTS[vector["name"]]
    blinded_msg, inv = blindrsa.blind(
        vector_key.public,
        h(vector["prepared_msg"]),
        salt_length=variant.salt_length,
        salt=h(vector["salt"]),
        inv=h(vector["inv"]),
    )
    assert blinded_msg == h(vector["blinded_msg"])
    assert inv == h(vector["inv"])


@VECTORS
def test_blind_with_r_matches_inv(vector: dict[str, Any], vector_key: BlindRSAPrivateKey) -> None:
    n = vector_key.public.n
    r = pow(int(vector["inv"], 16), -1, n)
    blinded_msg, inv = blindrsa.blind(
        vector_key.public,
        h(vector["prepared_msg"]),
        salt_length=blindrsa.VARIANTS[vector["name"]].salt_length,
        salt=h(vector["salt"]),
        r=r,
    )
    assert (blinded_msg, inv) == (h(vector["blinded_msg"]), h(vector["inv"]))


@VECTORS
def test_blind_sign(vector: dict[str, Any], vector_key: BlindRSAPrivateKey) -> None:
    assert blindrsa.blind_sign(vector_key, h(vector["blinded_msg"])) == h(vector["blind_sig"])
    # A plain cryptography key works too (converted on the fly).
    assert blindrsa.blind_sign(vector_key.key, h(vector["blinded_msg"])) == h(vector["blind_sig"])


@VECTORS
def test_finalize(vector: dict[str, Any], vector_key: BlindRSAPrivateKey) -> None:
    variant = blindrsa.VARIANTS[vector["name"]]
    sig = blindrsa.finalize(
        vector_key.public,
        h(vector["prepared_msg"]),
        h(vector["blind_sig"]),
        h(vector["inv"]),
        salt_length=variant.salt_length,
    )
    assert sig == h(vector["sig"])
    vector_key.public.key.verify(
        sig,
        h(vector["prepared_msg"]),
        padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=variant.salt_length),
        hashes.SHA384(),
    )


@VECTORS
def test_full_protocol_with_fresh_randomness(
    vector: dict[str, Any], vector_key: BlindRSAPrivateKey
) -> None:
    variant = blindrsa.VARIANTS[vector["name"]]
    prepared = blindrsa.prepare(h(vector["msg"]), variant.randomized)
    blinded_msg, inv = blindrsa.blind(vector_key.public, prepared, salt_length=variant.salt_length)
    blind_sig = blindrsa.blind_sign(vector_key, blinded_msg)
    sig = blindrsa.finalize(
        vector_key.public, prepared, blind_sig, inv, salt_length=variant.salt_length
    )
    assert blindrsa.verify(vector_key.public, prepared, sig, salt_length=variant.salt_length)
    # The salt length is part of the variant: the other one does not verify.
    other = blindrsa.PSS_SALT_LENGTH - variant.salt_length
    assert not blindrsa.verify(vector_key.public, prepared, sig, salt_length=other)


@pytest.mark.parametrize("offset", [0, 1, 2**64])
def test_blind_sign_refuses_m_at_or_above_n(vector_key: BlindRSAPrivateKey, offset: int) -> None:
    pk = vector_key.public
    value = pk.n + offset
    if value >= 1 << (8 * pk.modulus_length):
        pytest.skip("does not fit in k bytes")
    with pytest.raises(IssuanceError) as info:
        blindrsa.blind_sign(vector_key, value.to_bytes(pk.modulus_length, "big"))
    assert info.value.status == 422


def test_blind_sign_refuses_zero_and_wrong_length(vector_key: BlindRSAPrivateKey) -> None:
    k = vector_key.public.modulus_length
    for bad in (bytes(k), b"\x01" * (k - 1), b"\x01" * (k + 1), b""):
        with pytest.raises(IssuanceError) as info:
            blindrsa.blind_sign(vector_key, bad)
        assert info.value.status == 422


def test_blind_sign_checks_its_own_signature(vector_key: BlindRSAPrivateKey) -> None:
    # A corrupted CRT exponent stands in for a fault: the result must not be released.
    faulty = dataclasses.replace(vector_key, dp=vector_key.dp ^ 2)
    with pytest.raises(IssuanceError) as info:
        blindrsa.blind_sign(faulty, h(RSABSSA[0]["blinded_msg"]))
    assert info.value.status == 500


@VECTORS
def test_corrupted_blind_sig_fails_finalize(
    vector: dict[str, Any], vector_key: BlindRSAPrivateKey
) -> None:
    variant = blindrsa.VARIANTS[vector["name"]]
    good = h(vector["blind_sig"])
    for position in (0, len(good) // 2, len(good) - 1):
        corrupted = bytearray(good)
        corrupted[position] ^= 0x01
        with pytest.raises(IssuanceError):
            blindrsa.finalize(
                vector_key.public,
                h(vector["prepared_msg"]),
                bytes(corrupted),
                h(vector["inv"]),
                salt_length=variant.salt_length,
            )


def test_finalize_rejects_wrong_message_and_wrong_sizes(vector_key: BlindRSAPrivateKey) -> None:
    vector = RSABSSA[2]  # PSS-Deterministic, the variant token type 2 uses
    args = (h(vector["blind_sig"]), h(vector["inv"]))
    with pytest.raises(IssuanceError):
        blindrsa.finalize(vector_key.public, h(vector["prepared_msg"]) + b"x", *args)
    with pytest.raises(IssuanceError):
        blindrsa.finalize(vector_key.public, h(vector["prepared_msg"]), args[0][1:], args[1])
    too_big = (vector_key.public.n + 1).to_bytes(vector_key.public.modulus_length, "big")
    with pytest.raises(IssuanceError):
        blindrsa.finalize(vector_key.public, h(vector["prepared_msg"]), too_big, args[1])


def test_blind_argument_checks(vector_key: BlindRSAPrivateKey) -> None:
    pk = vector_key.public
    with pytest.raises(ValueError, match="salt"):
        blindrsa.blind(pk, b"m", salt=bytes(10))
    with pytest.raises(ValueError, match="not both"):
        blindrsa.blind(pk, b"m", r=3, inv=5)
    with pytest.raises(ValueError, match="unit"):
        blindrsa.blind(pk, b"m", r=pk.n)
    with pytest.raises(ValueError, match="msg_prefix"):
        blindrsa.prepare(b"m", True, msg_prefix=b"short")
    with pytest.raises(ValueError, match="msg_prefix"):
        blindrsa.prepare(b"m", False, msg_prefix=bytes(32))


def test_small_modulus_is_refused() -> None:
    # A 1024-bit modulus from two fixed primes would do, but any odd n under 2**2047 is
    # refused before use, so a synthetic one is enough here.
    with pytest.raises(ValueError, match="2048"):
        BlindRSAPublicKey.from_numbers((1 << 1023) + 1155, 65537)


def test_private_key_repr_hides_numbers(vector_key: BlindRSAPrivateKey) -> None:
    text = repr(vector_key)
    assert text == "BlindRSAPrivateKey(modulus_bits=4096)"
    assert str(vector_key.d)[:20] not in text
    assert format(vector_key.public.n, "x")[:20] not in repr(vector_key.public)


def test_mgf1_lengths() -> None:
    seed = b"seed"
    full = blindrsa.mgf1_sha384(seed, 3 * blindrsa.HASH_LENGTH + 5)
    assert len(full) == 3 * blindrsa.HASH_LENGTH + 5
    assert blindrsa.mgf1_sha384(seed, 10) == full[:10]
    assert blindrsa.mgf1_sha384(seed, 0) == b""
