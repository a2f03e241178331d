"""IssuerKey: the exact published SPKI, its PSS parameters, sizes, PEM."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from pat_middleware import DecodeError, IssuerKey, b64url_encode, encode_pss_spki
from pat_middleware.tokens.blind_rsa import RSASSA_PSS_SHA384_ALGORITHM_IDENTIFIER

from .vectors import TYPE2_ISSUANCE, h

RFC_SPKI = h(TYPE2_ISSUANCE[0]["pkS"])
PREFIX_2048 = bytes.fromhex(
    "30820152303d06092a864886f70d01010a3030a00d300b0609608648016503040202a11a301806092a864886"
    "f70d010108300b0609608648016503040202a2030201300382010f00"
)


def test_rfc_key_loads_and_hashes_published_bytes() -> None:
    key = IssuerKey.from_spki(RFC_SPKI)
    assert key.spki == RFC_SPKI
    assert key.token_key_id == hashlib.sha256(RFC_SPKI).digest()
    assert key.token_key_id.hex() == (
        "ca572f8982a9ca248a3056186322d93ca147266121ddeb5632c07f1f71cd2708"
    )
    assert key.modulus_bits == 2048
    assert key.authenticator_length == 256
    assert key.token_length == 354
    assert RFC_SPKI.startswith(PREFIX_2048)


def test_encode_pss_spki_matches_rfc_bytes() -> None:
    key = IssuerKey.from_spki(RFC_SPKI)
    assert encode_pss_spki(key.public_key) == RFC_SPKI


@pytest.mark.parametrize(
    "text",
    [
        b64url_encode(RFC_SPKI),
        b64url_encode(RFC_SPKI, padded=False),
        __import__("base64").b64encode(RFC_SPKI).decode(),
    ],
)
def test_from_base64_forms(text: str) -> None:
    assert IssuerKey.from_base64(text).spki == RFC_SPKI


def _tweak(offset: int, value: int) -> bytes:
    raw = bytearray(RFC_SPKI)
    raw[offset] = value
    return bytes(raw)


# Offsets into the AlgorithmIdentifier, which starts at byte 4 of the SPKI.
ALG = 4
WRONG_PARAMS = {
    "hash sha256 instead of sha384": _tweak(ALG + 29, 0x01),
    "mgf hash sha256": _tweak(ALG + 57, 0x01),
    "salt 32": _tweak(ALG + 62, 0x20),
    "salt 0": _tweak(ALG + 62, 0x00),
    "oid not pss": _tweak(ALG + 12, 0x0B),
}


def test_tweaks_hit_the_algorithm_identifier() -> None:
    for raw in WRONG_PARAMS.values():
        assert raw[ALG : ALG + 63] != RSASSA_PSS_SHA384_ALGORITHM_IDENTIFIER
        assert raw[ALG + 63 :] == RFC_SPKI[ALG + 63 :]


@pytest.mark.parametrize("raw", WRONG_PARAMS.values(), ids=WRONG_PARAMS.keys())
def test_wrong_pss_parameters_refused(raw: bytes) -> None:
    with pytest.raises(DecodeError):
        IssuerKey.from_spki(raw)


def test_rsa_encryption_spki_refused() -> None:
    key = IssuerKey.from_spki(RFC_SPKI)
    plain = key.public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(DecodeError, match="rsaEncryption"):
        IssuerKey.from_spki(plain)


@pytest.mark.parametrize(
    "raw",
    [b"", RFC_SPKI[:-1], RFC_SPKI + b"\x00", b"\x30\x00", b"\x31" + RFC_SPKI[1:], b"\x00" * 5000],
    ids=["empty", "truncated", "trailing", "empty seq", "not a sequence", "huge"],
)
def test_garbage_refused(raw: bytes) -> None:
    with pytest.raises(DecodeError):
        IssuerKey.from_spki(raw)


def test_4096_is_opt_in(rsa_4096: rsa.RSAPrivateKey) -> None:
    spki = encode_pss_spki(rsa_4096.public_key())
    assert len(spki) == 598
    with pytest.raises(DecodeError, match="4096"):
        IssuerKey.from_spki(spki)
    key = IssuerKey.from_spki(spki, allow_4096=True)
    assert key.authenticator_length == 512
    assert key.token_length == 610


def test_other_sizes_refused() -> None:
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(DecodeError, match="1024"):
        IssuerKey.from_spki(encode_pss_spki(small.public_key()), allow_4096=True)


def test_from_pem_private_and_public(rsa_2048: rsa.RSAPrivateKey) -> None:
    pem = rsa_2048.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    from_private = IssuerKey.from_pem(pem)
    spki = encode_pss_spki(rsa_2048.public_key())
    assert from_private.spki == spki
    text = __import__("base64").b64encode(spki).decode()
    public_pem = (
        "-----BEGIN PUBLIC KEY-----\n"
        + "\n".join(text[i : i + 64] for i in range(0, len(text), 64))
        + "\n-----END PUBLIC KEY-----\n"
    )
    assert IssuerKey.from_pem(public_pem).token_key_id == from_private.token_key_id
    plain_pem = rsa_2048.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(DecodeError):
        IssuerKey.from_pem(plain_pem)
    with pytest.raises(DecodeError):
        IssuerKey.from_pem("not a pem")


def test_repr_shows_only_the_key_id() -> None:
    key = IssuerKey.from_spki(RFC_SPKI)
    assert "ca572f89" in repr(key)
    assert b64url_encode(RFC_SPKI)[:40] not in repr(key)
