"""The keys that verify redemption records: Ed25519 JWKs (RFC 8037) in a JWK Set (RFC 7517 §5).

An issuer publishes its record verification keys at :data:`JWKS_PATH` as
``application/jwk-set+json``; each key is named by its ``kid`` (by default its RFC 7638
thumbprint). :meth:`RecordKeySet.from_bytes` reads a set strictly (bounded, no duplicate
names or kids, every key an Ed25519 public key with a kid, no private members): for files an
operator configures. :meth:`RecordKeySet.from_published` reads what an issuer serves, skipping
keys meant for something else, as a consumer that fetches it must. Every failure is a
:class:`~pat_middleware.errors.DecodeError`. No I/O: fetching a JWK Set is the caller's
business (:mod:`pat_middleware.discovery` does it for origins).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ..errors import DecodeError
from .jose import b64url, b64url_decode_canonical, strict_json

#: Where an issuer publishes its record verification keys, and their media type (RFC 7517 §8.5).
JWKS_PATH = "/.well-known/private-state-token/redemption-record-keys"
JWKS_MEDIA_TYPE = "application/jwk-set+json"
#: The JWS algorithm of every record key (RFC 8037 §3.1).
KEY_ALG = "EdDSA"
#: Bounds on what a peer may make us read.
MAX_JWKS_LENGTH = 64 * 1024
MAX_JWKS_KEYS = 32
MAX_KID_LENGTH = 128
ED25519_KEY_LENGTH = 32


def jwk_thumbprint(public_key: Ed25519PublicKey) -> str:
    """The RFC 7638 JWK thumbprint (SHA-256, base64url) of an Ed25519 key: its ``kid``."""
    canonical = json.dumps(
        {"crv": "Ed25519", "kty": "OKP", "x": b64url(public_key.public_bytes_raw())},
        separators=(",", ":"),
        sort_keys=True,
    )
    return b64url(hashlib.sha256(canonical.encode("ascii")).digest())


def check_kid(kid: object) -> str:
    """``kid`` when it is 1 to 128 printable ASCII characters, else :class:`DecodeError`."""
    if (
        not isinstance(kid, str)
        or not 0 < len(kid) <= MAX_KID_LENGTH
        or not all("!" <= c <= "~" for c in kid)
    ):
        raise DecodeError("kid is 1 to 128 printable ASCII characters")
    return kid


@dataclass(frozen=True, slots=True)
class RecordKey:
    """One record verification key: an Ed25519 public key and its ``kid``."""

    kid: str
    public_key: Ed25519PublicKey = field(compare=False)
    raw: bytes = field(init=False, repr=False)

    def __post_init__(self) -> None:
        check_kid(self.kid)
        object.__setattr__(self, "raw", self.public_key.public_bytes_raw())

    @classmethod
    def from_public_key(cls, public_key: Ed25519PublicKey) -> RecordKey:
        """Name the key by its RFC 7638 thumbprint."""
        return cls(jwk_thumbprint(public_key), public_key)

    def to_jwk(self) -> dict[str, str]:
        """The public JWK (RFC 8037 §2): OKP, Ed25519, with ``kid``, ``alg`` and ``use``."""
        return {
            "kty": "OKP",
            "crv": "Ed25519",
            "x": b64url(self.raw),
            "kid": self.kid,
            "alg": KEY_ALG,
            "use": "sig",
        }


def parse_jwk(obj: object) -> RecordKey:
    """One JWK that verifies records, or :class:`DecodeError` saying why not."""
    if not isinstance(obj, dict):
        raise DecodeError("a JWK is a JSON object")
    if obj.get("kty") != "OKP" or obj.get("crv") != "Ed25519":
        raise DecodeError("only OKP Ed25519 keys (RFC 8037) verify redemption records")
    if "d" in obj:
        raise DecodeError("the JWK Set holds private key material")
    if obj.get("alg", KEY_ALG) != KEY_ALG or obj.get("use", "sig") != "sig":
        raise DecodeError("a record key has alg EdDSA and use sig when it says")
    ops = obj.get("key_ops")
    if ops is not None and (not isinstance(ops, list) or "verify" not in ops):
        raise DecodeError("a record key's key_ops must allow verify")
    x = obj.get("x")
    if not isinstance(x, str):
        raise DecodeError("a JWK needs x")
    raw = b64url_decode_canonical(x, "JWK x")
    if len(raw) != ED25519_KEY_LENGTH:
        raise DecodeError("an Ed25519 key is 32 bytes")
    kid = check_kid(obj.get("kid"))
    try:
        public_key = Ed25519PublicKey.from_public_bytes(raw)
    except ValueError as e:  # pragma: no cover - every 32-byte string loads
        raise DecodeError("not an Ed25519 public key") from e
    return RecordKey(kid, public_key)


@dataclass(frozen=True, slots=True)
class RecordKeySet:
    """An issuer's record verification keys (a JWK Set, RFC 7517 §5), looked up by ``kid``."""

    keys: tuple[RecordKey, ...]
    _by_kid: dict[str, RecordKey] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_kid = {key.kid: key for key in self.keys}
        if len(by_kid) != len(self.keys):
            raise DecodeError("two keys share a kid")
        if len(self.keys) > MAX_JWKS_KEYS:
            raise DecodeError(f"more than {MAX_JWKS_KEYS} keys")
        object.__setattr__(self, "_by_kid", by_kid)

    def get(self, kid: str) -> RecordKey | None:
        return self._by_kid.get(kid)

    def to_json(self) -> dict[str, list[dict[str, str]]]:
        return {"keys": [key.to_jwk() for key in self.keys]}

    def to_bytes(self) -> bytes:
        return json.dumps(self.to_json(), separators=(",", ":")).encode("ascii")

    @classmethod
    def from_bytes(cls, data: bytes | str) -> RecordKeySet:
        """Parse a JWK Set strictly: bounded, no duplicate names or kids, every key an
        Ed25519 public key with a kid, no private members. Raises :class:`DecodeError`."""
        if len(data) > MAX_JWKS_LENGTH:
            raise DecodeError(f"JWK Set is longer than {MAX_JWKS_LENGTH} bytes")
        return cls.from_json(strict_json(data, "JWK Set"))

    @classmethod
    def from_json(cls, obj: object) -> RecordKeySet:
        entries = _entries(obj)
        if not 0 < len(entries) <= MAX_JWKS_KEYS:
            raise DecodeError(f"a JWK Set holds 1 to {MAX_JWKS_KEYS} keys")
        return cls(tuple(parse_jwk(entry) for entry in entries))

    @classmethod
    def from_published(cls, data: bytes | str) -> RecordKeySet:
        """Read the JWK Set an issuer publishes, as a consumer fetching it should: the
        document strictly (bounded, strict JSON, an object with a keys list, no private key
        material anywhere), each key leniently. A key that does not verify records (another
        key type, ``use: enc``, a bad ``x`` or ``kid``) is skipped, as is a later key with a
        kid already seen; at most :data:`MAX_JWKS_KEYS` usable keys are kept, in document
        order. Raises :class:`DecodeError` when none is left."""
        if len(data) > MAX_JWKS_LENGTH:
            raise DecodeError(f"the JWK Set is longer than {MAX_JWKS_LENGTH} bytes")
        entries = _entries(strict_json(data, "the JWK Set"))
        if any(isinstance(entry, dict) and "d" in entry for entry in entries):
            # The issuer published a private key: anyone can forge its records.
            raise DecodeError("the JWK Set holds private key material")
        keys: dict[str, RecordKey] = {}
        for entry in entries:
            try:
                key = parse_jwk(entry)
            except DecodeError:
                continue  # one key for another purpose does not spoil the others
            keys.setdefault(key.kid, key)
            if len(keys) == MAX_JWKS_KEYS:
                break
        if not keys:
            raise DecodeError("the JWK Set holds no Ed25519 key that verifies records")
        return cls(tuple(keys.values()))


def _entries(obj: object) -> list[object]:
    if not isinstance(obj, dict) or not isinstance(obj.get("keys"), list):
        raise DecodeError("a JWK Set is an object with a keys list")
    entries: list[object] = obj["keys"]
    return entries


__all__ = [
    "ED25519_KEY_LENGTH",
    "JWKS_MEDIA_TYPE",
    "JWKS_PATH",
    "KEY_ALG",
    "MAX_JWKS_KEYS",
    "MAX_JWKS_LENGTH",
    "MAX_KID_LENGTH",
    "RecordKey",
    "RecordKeySet",
    "check_kid",
    "jwk_thumbprint",
    "parse_jwk",
]
