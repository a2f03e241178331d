"""Token type 0x0001, VOPRF (P-384, SHA-384) (RFC 9578 §5): its keys and registry entry.

A type-1 ``token-key`` is the issuer's public key pkI as a 49-byte SEC1 compressed P-384
point, and ``token_key_id`` is SHA-256 of exactly those 49 bytes (RFC 9578 §5.5): never of
the 97-byte uncompressed form, never of an SPKI. The authenticator is 48 bytes: the RFC 9497
VOPRF output of the 98-byte token input under the issuer's private key skI.

Tokens of this type are **privately verifiable**: only the holder of skI can check one, by
recomputing the output (RFC 9497 Evaluate) and comparing in constant time (RFC 9578 §5.4).
An origin verifies type-1 tokens only in a joint deployment, where it holds the issuer's key:
:class:`VOPRFTokenKey` is that key. :class:`VOPRFPublicKey` is the published half, for
clients, directories and ``inspect``; it verifies nothing.

The private key is stored as an unencrypted PKCS#8 PEM of an EC P-384 key. The secret scalar
stays inside OpenSSL (:mod:`pat_middleware.tokens.oprf.keys`) and never appears in ``repr``.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from ..core.codec import b64url_encode
from ..core.wire import AUTHENTICATOR_INPUT_LENGTH, TOKEN_TYPE_VOPRF
from ..errors import DecodeError
from .base import TokenType
from .oprf import NE, NH, PublicKey, SecretKey, evaluate

#: Nk: a type-1 authenticator is the 48-byte VOPRF output (Nh of P384-SHA384).
VOPRF_NK = NH
#: A type-1 token: 98 + 48 bytes.
VOPRF_TOKEN_LENGTH = AUTHENTICATOR_INPUT_LENGTH + VOPRF_NK
#: A published type-1 key: SEC1 compressed P-384 point (Ne).
VOPRF_PUBLIC_KEY_LENGTH = NE
#: Bound on a private key PEM read from settings or the command line.
MAX_PRIVATE_KEY_PEM = 4096


@dataclass(frozen=True, slots=True)
class VOPRFPublicKey:
    """A published type-1 issuer key (pkI): what challenges and directories carry.

    It cannot verify a token (that needs skI); it names the key and lets a client run
    issuance (:mod:`pat_middleware.issuer.voprf`).
    """

    published: bytes = field(repr=False)
    token_key_id: bytes
    element: PublicKey = field(repr=False, compare=False)
    token_type: int = TOKEN_TYPE_VOPRF

    def __repr__(self) -> str:
        return f"VOPRFPublicKey(token_type=1, token_key_id={self.token_key_id.hex()})"

    @property
    def authenticator_length(self) -> int:
        return VOPRF_NK

    @property
    def token_length(self) -> int:
        return VOPRF_TOKEN_LENGTH

    @property
    def token_key(self) -> str:
        """The 49 published bytes as padded base64url, for a ``token-key`` parameter."""
        return b64url_encode(self.published)

    @classmethod
    def from_bytes(cls, data: bytes) -> VOPRFPublicKey:
        """Validate a published key: 49 bytes, a compressed P-384 point (RFC 9497
        DeserializeElement: on the curve, not the identity)."""
        data = bytes(data)
        if len(data) != VOPRF_PUBLIC_KEY_LENGTH:
            raise DecodeError(
                f"a type-1 token-key is a {VOPRF_PUBLIC_KEY_LENGTH}-byte compressed P-384 "
                f"point, not {len(data)} bytes"
            )
        return cls.from_element(PublicKey.from_compressed(data))

    @classmethod
    def from_element(cls, element: PublicKey) -> VOPRFPublicKey:
        published = element.compressed
        return cls(published, hashlib.sha256(published).digest(), element)


class VOPRFTokenKey:
    """The issuer's private key skI, held by an origin that verifies type-1 tokens.

    Build it with :meth:`from_pem`, :meth:`from_private_key`, :meth:`from_scalar` or
    :meth:`generate`. Loaded once; :meth:`verify` recomputes the authenticator for each
    token (RFC 9578 §5.4). Equal keys are the same public key. ``repr`` shows only the key
    id.
    """

    __slots__ = ("_public", "_secret")

    _public: VOPRFPublicKey
    _secret: SecretKey

    def __init__(self, secret: SecretKey) -> None:
        object.__setattr__(self, "_secret", secret)
        object.__setattr__(self, "_public", VOPRFPublicKey.from_element(secret.public_key))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __repr__(self) -> str:
        return (
            f"VOPRFTokenKey(token_type=1, token_key_id={self.token_key_id.hex()}, "
            "private_key=<hidden>)"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, VOPRFTokenKey):
            return NotImplemented
        return self._public == other._public

    def __hash__(self) -> int:
        return hash((TOKEN_TYPE_VOPRF, self._public.token_key_id))

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("a VOPRFTokenKey holds a private key and is not pickled")

    # -- loading -------------------------------------------------------------------------

    @classmethod
    def from_private_key(cls, key: PrivateKeyTypes) -> VOPRFTokenKey:
        """Use a loaded ``cryptography`` EC P-384 private key."""
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise DecodeError("a type-1 issuer key is an EC P-384 private key")
        if not isinstance(key.curve, ec.SECP384R1):
            raise DecodeError(f"a type-1 issuer key is on P-384, not {key.curve.name}")
        return cls(SecretKey.from_private_key(key))

    @classmethod
    def from_pem(cls, pem: str | bytes) -> VOPRFTokenKey:
        """Load an unencrypted PEM private key (PKCS#8) of an EC P-384 key. The message of
        a failure never contains the key material."""
        data = pem.encode("ascii", "replace") if isinstance(pem, str) else bytes(pem)
        if len(data) > MAX_PRIVATE_KEY_PEM:
            raise DecodeError("the private key PEM is longer than any P-384 key's")
        if b"PRIVATE KEY-----" not in data:
            raise DecodeError("expected a PEM private key (-----BEGIN PRIVATE KEY-----)")
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except TypeError:
            raise DecodeError("the private key PEM is encrypted; store it unencrypted") from None
        except (ValueError, UnsupportedAlgorithm):
            raise DecodeError("the PEM does not hold a private key that loads") from None
        return cls.from_private_key(key)

    @classmethod
    def from_scalar(cls, data: bytes) -> VOPRFTokenKey:
        """From a 48-byte big-endian scalar in [1, n-1] (RFC 9497 SerializeScalar, the form
        other implementations such as privacypass-ts store)."""
        return cls(SecretKey.from_bytes(bytes(data)))

    @classmethod
    def generate(cls) -> VOPRFTokenKey:
        """A new random issuer key."""
        return cls(SecretKey.generate())

    # -- the key ---------------------------------------------------------------------------

    @property
    def public(self) -> VOPRFPublicKey:
        """The published half (pkI)."""
        return self._public

    @property
    def secret_key(self) -> SecretKey:
        """The VOPRF secret key, for the issuer role (BlindEvaluate)."""
        return self._secret

    @property
    def token_type(self) -> int:
        return TOKEN_TYPE_VOPRF

    @property
    def token_key_id(self) -> bytes:
        return self._public.token_key_id

    @property
    def published(self) -> bytes:
        return self._public.published

    @property
    def token_key(self) -> str:
        return self._public.token_key

    @property
    def authenticator_length(self) -> int:
        return VOPRF_NK

    @property
    def token_length(self) -> int:
        return VOPRF_TOKEN_LENGTH

    def private_pem(self) -> bytes:
        """The private key as unencrypted PKCS#8 PEM, for storage (mode 0600)."""
        return self._secret.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def verify(self, token_input: bytes, authenticator: bytes) -> bool:
        """RFC 9578 §5.4: Evaluate(skI, token_input) == authenticator, compared in constant
        time. The secret scalar is used only inside OpenSSL."""
        if len(authenticator) != VOPRF_NK:
            return False
        try:
            expected = evaluate(self._secret, token_input)
        except DecodeError:  # an input longer than RFC 9497 allows; never a 98-byte one
            return False
        return hmac.compare_digest(expected, authenticator)


class VOPRFTokenType(TokenType):
    """Token type 0x0001, VOPRF (P-384, SHA-384): privately verifiable."""

    value = TOKEN_TYPE_VOPRF
    name = "VOPRF (P-384, SHA-384)"
    nk = VOPRF_NK
    publicly_verifiable = False

    def load_public_key(self, published: bytes, *, allow_4096: bool = False) -> VOPRFPublicKey:
        return VOPRFPublicKey.from_bytes(published)

    def owns_private_key(self, key: PrivateKeyTypes) -> bool:
        return isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP384R1)

    def load_private_key(self, pem: bytes) -> VOPRFTokenKey:
        return VOPRFTokenKey.from_pem(pem)

    def generate_private_key(self, size: int | None = None) -> ec.EllipticCurvePrivateKey:
        if size is not None:
            raise ValueError("type-1 keys are P-384 keys; there is no size to choose")
        return ec.generate_private_key(ec.SECP384R1())

    def published_key_of(self, private_key: PrivateKeyTypes) -> VOPRFPublicKey:
        return VOPRFTokenKey.from_private_key(private_key).public


__all__ = [
    "VOPRF_NK",
    "VOPRF_PUBLIC_KEY_LENGTH",
    "VOPRF_TOKEN_LENGTH",
    "VOPRFPublicKey",
    "VOPRFTokenKey",
    "VOPRFTokenType",
]
