"""Issuer public keys for token type 2 (Blind RSA), as published (RFC 9578 §6.5).

A type-2 ``token-key`` is a SubjectPublicKeyInfo whose AlgorithmIdentifier is id-RSASSA-PSS
with SHA-384, MGF1-SHA-384 and a 48-byte salt. ``cryptography`` loads such a key but ignores
those parameters, so they are checked here byte for byte. ``token_key_id`` is SHA-256 of the
exact bytes the issuer published; a re-encoded key would hash differently.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from ..core.codec import b64_decode, b64url_encode
from ..core.wire import TOKEN_TYPE_BLIND_RSA
from ..errors import DecodeError
from .base import TokenType
from .pss_tink import BACKEND_CRYPTOGRAPHY, BACKEND_TINK, requested_backend, tink_verifier

#: AlgorithmIdentifier { id-RSASSA-PSS, { sha384, mgf1(sha384), saltLength 48 } }, DER.
#: The same 63 bytes for every modulus size (RFC 9578 §6.5, RFC 4055).
RSASSA_PSS_SHA384_ALGORITHM_IDENTIFIER = bytes.fromhex(
    "303d06092a864886f70d01010a3030"
    "a00d300b0609608648016503040202"
    "a11a301806092a864886f70d010108300b0609608648016503040202"
    "a203020130"
)
#: AlgorithmIdentifier { rsaEncryption, NULL }: what a plain RSA key carries.
RSA_ENCRYPTION_ALGORITHM_IDENTIFIER = bytes.fromhex("300d06092a864886f70d0101010500")

DEFAULT_MODULUS_BITS = 2048
LEGACY_MODULUS_BITS = 4096  # drafts protocol-00..04 and early deployments
#: Hash and salt of the type-2 signature: RSASSA-PSS with SHA-384, MGF1-SHA-384, salt 48.
PSS_SALT_LENGTH = 48

#: RSASSA-PSS with SHA-384, MGF1-SHA-384 and a 48-byte salt. Built once, shared by every call.
_PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=PSS_SALT_LENGTH)
_SHA384 = hashes.SHA384()

_SEQUENCE = 0x30
_BIT_STRING = 0x03
_MAX_SPKI_LENGTH = 2048  # a 4096-bit PSS SPKI is 598 bytes; nothing legitimate is near this


@dataclass(frozen=True, slots=True)
class IssuerKey:
    """A validated type-2 issuer public key.

    Build it with :meth:`from_spki`, :meth:`from_base64` or :meth:`from_pem`. The public key
    object and its verifier are created once, here, and reused for every verification: Tink's
    when the ``fast`` extra is installed and takes the key, ``cryptography``'s otherwise
    (:mod:`pat_middleware.tokens.pss_tink`, ``PAT_MIDDLEWARE_RSA_BACKEND``).
    """

    spki: bytes = field(repr=False)
    token_key_id: bytes
    public_key: rsa.RSAPublicKey = field(repr=False, compare=False)
    modulus_bits: int
    token_type: int = TOKEN_TYPE_BLIND_RSA
    _verify: Callable[[bytes, bytes], bool] = field(
        init=False, repr=False, compare=False, hash=False
    )
    _backend: str = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        forced = requested_backend() == BACKEND_CRYPTOGRAPHY
        fast = None if forced else tink_verifier(self.public_key)
        if fast is not None:
            object.__setattr__(self, "_verify", fast)
            object.__setattr__(self, "_backend", BACKEND_TINK)
        else:
            object.__setattr__(self, "_verify", _cryptography_verifier(self.public_key))
            object.__setattr__(self, "_backend", BACKEND_CRYPTOGRAPHY)

    def __repr__(self) -> str:
        return (
            f"IssuerKey(token_type={self.token_type}, modulus_bits={self.modulus_bits}, "
            f"token_key_id={self.token_key_id.hex()})"
        )

    @property
    def rsa_backend(self) -> str:
        """Which library verifies this key's signatures: ``tink`` or ``cryptography``."""
        return self._backend

    @property
    def authenticator_length(self) -> int:
        """Nk: the length of this key's signatures, hence of a token's authenticator."""
        return (self.modulus_bits + 7) // 8

    @property
    def token_length(self) -> int:
        return 98 + self.authenticator_length

    @property
    def published(self) -> bytes:
        """The SPKI exactly as the issuer published it (what ``token_key_id`` hashes)."""
        return self.spki

    @property
    def token_key(self) -> str:
        """The published bytes as padded base64url, ready for a ``token-key`` parameter."""
        return b64url_encode(self.spki)

    def verify(self, token_input: bytes, authenticator: bytes) -> bool:
        """True when ``authenticator`` is an RSASSA-PSS signature (SHA-384, MGF1-SHA-384,
        salt 48) of ``token_input`` under this key (RFC 9578 §6.4), exactly Nk bytes long
        (RFC 8017 §8.1.2 step 1). Never raises on a bad signature."""
        return self._verify(token_input, authenticator)

    @classmethod
    def from_spki(cls, spki: bytes, *, allow_4096: bool = False) -> IssuerKey:
        """Validate the exact published DER bytes of an RSASSA-PSS SPKI."""
        spki = bytes(spki)
        if len(spki) > _MAX_SPKI_LENGTH:
            raise DecodeError("token-key is too long to be an RSA-2048/4096 SPKI")
        body = _der_sequence_body(spki, "SubjectPublicKeyInfo")
        if body.startswith(RSA_ENCRYPTION_ALGORITHM_IDENTIFIER):
            raise DecodeError(
                "token-key is an rsaEncryption SPKI; type 2 needs the id-RSASSA-PSS form "
                "(SHA-384, MGF1-SHA-384, salt 48) exactly as the issuer publishes it"
            )
        if not body.startswith(RSASSA_PSS_SHA384_ALGORITHM_IDENTIFIER):
            raise DecodeError(
                "token-key AlgorithmIdentifier is not id-RSASSA-PSS with SHA-384, "
                "MGF1-SHA-384 and salt length 48"
            )
        rest = body[len(RSASSA_PSS_SHA384_ALGORITHM_IDENTIFIER) :]
        bits = _der_element(rest, _BIT_STRING, "subjectPublicKey")
        if bits[:1] != b"\x00":
            raise DecodeError("subjectPublicKey BIT STRING has unused bits")
        try:
            loaded = serialization.load_der_public_key(spki)
        except (ValueError, UnsupportedAlgorithm) as e:
            raise DecodeError("token-key does not hold a valid RSA public key") from e
        if not isinstance(loaded, rsa.RSAPublicKey):
            raise DecodeError("token-key is not an RSA key")
        modulus_bits = loaded.key_size
        allowed = {DEFAULT_MODULUS_BITS} | ({LEGACY_MODULUS_BITS} if allow_4096 else set())
        if modulus_bits not in allowed:
            hint = " (enable 4096-bit keys to accept it)" if modulus_bits == 4096 else ""
            raise DecodeError(f"RSA modulus is {modulus_bits} bits; not accepted{hint}")
        return cls(
            spki=spki,
            token_key_id=hashlib.sha256(spki).digest(),
            public_key=loaded,
            modulus_bits=modulus_bits,
        )

    @classmethod
    def from_base64(cls, text: str | bytes, *, allow_4096: bool = False) -> IssuerKey:
        """Load a ``token-key`` value: base64url or base64, padded or not."""
        return cls.from_spki(b64_decode(text, max_length=1024), allow_4096=allow_4096)

    @classmethod
    def from_pem(cls, pem: str | bytes, *, allow_4096: bool = False) -> IssuerKey:
        """Load a PEM ``PUBLIC KEY`` holding the PSS SPKI, or an issuer ``PRIVATE KEY``.

        From a private key the canonical PSS SPKI is derived, which is what our issuer
        publishes. A public PEM must already be the PSS form: its bytes are what get hashed.
        """
        if isinstance(pem, str):
            pem = pem.encode("ascii", "replace")
        if b"PRIVATE KEY-----" in pem:
            try:
                private = serialization.load_pem_private_key(pem, password=None)
            except (ValueError, TypeError, UnsupportedAlgorithm) as e:
                raise DecodeError("PEM private key does not load") from e
            if not isinstance(private, rsa.RSAPrivateKey):
                raise DecodeError("PEM private key is not an RSA key")
            return cls.from_spki(encode_pss_spki(private.public_key()), allow_4096=allow_4096)
        der = _pem_body(pem, b"PUBLIC KEY")
        return cls.from_spki(der, allow_4096=allow_4096)


class BlindRSATokenType(TokenType):
    """Token type 0x0002, Blind RSA (RFC 9578 §6): publicly verifiable with the PSS SPKI."""

    value = TOKEN_TYPE_BLIND_RSA
    name = "Blind RSA (2048-bit)"
    nk = (DEFAULT_MODULUS_BITS + 7) // 8
    publicly_verifiable = True

    def load_public_key(self, published: bytes, *, allow_4096: bool = False) -> IssuerKey:
        return IssuerKey.from_spki(published, allow_4096=allow_4096)

    def load_public_key_text(self, text: str | bytes, *, allow_4096: bool = False) -> IssuerKey:
        """``token-key`` text, or a PEM ``PUBLIC KEY`` block holding the PSS SPKI."""
        raw = text.encode("ascii", "replace") if isinstance(text, str) else text
        if b"-----BEGIN" in raw:
            if b"PRIVATE KEY-----" in raw:
                raise DecodeError("a private key, where the issuer's public key is expected")
            return IssuerKey.from_spki(_pem_body(raw, b"PUBLIC KEY"), allow_4096=allow_4096)
        return IssuerKey.from_base64(raw, allow_4096=allow_4096)

    def owns_private_key(self, key: PrivateKeyTypes) -> bool:
        return isinstance(key, rsa.RSAPrivateKey)

    def generate_private_key(self, size: int | None = None) -> rsa.RSAPrivateKey:
        bits = DEFAULT_MODULUS_BITS if size is None else size
        if bits not in (DEFAULT_MODULUS_BITS, LEGACY_MODULUS_BITS):
            raise ValueError("type-2 keys are 2048 or 4096 bits")
        return rsa.generate_private_key(public_exponent=65537, key_size=bits)

    def published_key_of(self, private_key: PrivateKeyTypes) -> IssuerKey:
        if not isinstance(private_key, rsa.RSAPrivateKey):
            raise DecodeError("not an RSA private key")
        return IssuerKey.from_spki(encode_pss_spki(private_key.public_key()), allow_4096=True)


def _cryptography_verifier(public_key: rsa.RSAPublicKey) -> Callable[[bytes, bytes], bool]:
    """The reference verifier. It refuses a signature that is not exactly the modulus length,
    as RFC 8017 §8.1.2 asks and Tink does (OpenSSL alone would take one whose leading zero
    bytes were stripped), so that both backends give the same answer for every input."""
    size = (public_key.key_size + 7) // 8
    check = public_key.verify

    def verify(token_input: bytes, authenticator: bytes) -> bool:
        if len(authenticator) != size:
            return False
        try:
            check(authenticator, token_input, _PSS, _SHA384)
        except InvalidSignature:
            return False
        return True

    return verify


def encode_pss_spki(public_key: rsa.RSAPublicKey) -> bytes:
    """The RSASSA-PSS SPKI (SHA-384, MGF1-SHA-384, salt 48) of ``public_key``, in DER."""
    pkcs1 = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    bit_string = bytes([_BIT_STRING]) + _der_length(len(pkcs1) + 1) + b"\x00" + pkcs1
    body = RSASSA_PSS_SHA384_ALGORITHM_IDENTIFIER + bit_string
    return bytes([_SEQUENCE]) + _der_length(len(body)) + body


def _der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _read_der_header(data: bytes, tag: int, what: str) -> tuple[int, int]:
    """(offset of the contents, length of the contents) of the element at ``data[0]``."""
    if len(data) < 2 or data[0] != tag:
        raise DecodeError(f"{what}: expected DER tag 0x{tag:02x}")
    first = data[1]
    if first < 0x80:
        return 2, first
    count = first & 0x7F
    if count == 0 or count > 3 or len(data) < 2 + count:
        raise DecodeError(f"{what}: bad DER length")
    length = int.from_bytes(data[2 : 2 + count], "big")
    if length < 0x80 or data[2] == 0:
        raise DecodeError(f"{what}: non-minimal DER length")
    return 2 + count, length


def _der_element(data: bytes, tag: int, what: str) -> bytes:
    """The contents of the single element that makes up all of ``data``."""
    start, length = _read_der_header(data, tag, what)
    if start + length != len(data):
        raise DecodeError(f"{what}: length does not match the encoding")
    return data[start:]


def _der_sequence_body(data: bytes, what: str) -> bytes:
    return _der_element(data, _SEQUENCE, what)


def _pem_body(pem: bytes, label: bytes) -> bytes:
    begin = b"-----BEGIN " + label + b"-----"
    end = b"-----END " + label + b"-----"
    start = pem.find(begin)
    stop = pem.find(end, start + len(begin))
    if start < 0 or stop < 0:
        raise DecodeError(f"PEM has no {label.decode()} block")
    inner = b"".join(pem[start + len(begin) : stop].split())
    return b64_decode(inner, max_length=4096)


__all__ = [
    "DEFAULT_MODULUS_BITS",
    "LEGACY_MODULUS_BITS",
    "PSS_SALT_LENGTH",
    "RSASSA_PSS_SHA384_ALGORITHM_IDENTIFIER",
    "BlindRSATokenType",
    "IssuerKey",
    "encode_pss_spki",
]
