"""Exact wire formats: TokenChallenge (RFC 9577 §2.1.1) and Token (RFC 9577 §2.2.1).

All integers are big-endian (TLS presentation language). Objects are frozen and validated at
construction, so a value that exists is a value that can be encoded; ``from_bytes`` accepts
exactly one encoding and nothing after it.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass, field

from ..errors import DecodeError

TOKEN_TYPE_VOPRF = 0x0001
TOKEN_TYPE_BLIND_RSA = 0x0002

#: Reserved "grease" token types (RFC 9577 §2.1 / IANA registry). Clients and origins send
#: them to keep peers honest; they never carry a real token.
GREASE_TOKEN_TYPES = frozenset(
    {
        0x0000, 0x02AA, 0x1132, 0x2E96, 0x3CD3, 0x4473, 0x5A63, 0x6D32, 0x7F3F,
        0x8D07, 0x916B, 0xA6A4, 0xBEAB, 0xC3F3, 0xDA42, 0xE944, 0xF057,
    }
)  # fmt: skip

NONCE_LENGTH = 32
DIGEST_LENGTH = 32  # SHA-256, for every token type
TOKEN_KEY_ID_LENGTH = 32  # Nid
REDEMPTION_CONTEXT_LENGTH = 32
#: token_type(2) | nonce(32) | challenge_digest(32) | token_key_id(32)
AUTHENTICATOR_INPUT_LENGTH = 2 + NONCE_LENGTH + DIGEST_LENGTH + TOKEN_KEY_ID_LENGTH

MAX_ISSUER_NAME_LENGTH = 0xFFFF
MAX_ORIGIN_INFO_LENGTH = 0xFFFF

_U16 = struct.Struct("!H")
_U8 = struct.Struct("!B")

# Offsets inside a Token.
NONCE_OFFSET = 2
CHALLENGE_DIGEST_OFFSET = NONCE_OFFSET + NONCE_LENGTH
TOKEN_KEY_ID_OFFSET = CHALLENGE_DIGEST_OFFSET + DIGEST_LENGTH

# Printable ASCII without space, comma or control characters: enough for "host[:port]" and
# IDNA A-labels, strict enough to keep header-splitting and comma tricks out.
_NAME_CHARS = frozenset(bytes(range(0x21, 0x7F))) - {ord(",")}


def _check_server_name(raw: bytes, what: str) -> None:
    if not raw:
        raise DecodeError(f"{what} is empty")
    if not _NAME_CHARS.issuperset(raw):
        raise DecodeError(f"{what} must be printable ASCII without spaces or commas")
    if b"@" in raw:
        raise DecodeError(f"{what} must not contain userinfo ('@')")


@dataclass(frozen=True, slots=True)
class TokenChallenge:
    """A TokenChallenge (RFC 9577 §2.1.1).

    ``origin_info`` is a tuple of server names; on the wire they are joined with ``,`` in the
    given order (the digest covers the exact order).
    """

    token_type: int
    issuer_name: str
    redemption_context: bytes = field(default=b"", repr=False)
    origin_info: tuple[str, ...] = ()
    _encoded: bytes = field(init=False, repr=False, compare=False)
    _digest: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not 0 <= self.token_type <= 0xFFFF:
            raise DecodeError("token_type must fit in 16 bits")
        try:
            issuer = self.issuer_name.encode("ascii")
        except (UnicodeEncodeError, AttributeError) as e:
            raise DecodeError("issuer_name must be an ASCII string") from e
        if len(issuer) > MAX_ISSUER_NAME_LENGTH:
            raise DecodeError("issuer_name is longer than 65535 bytes")
        _check_server_name(issuer, "issuer_name")
        context = self.redemption_context
        if not isinstance(context, bytes) or len(context) not in (0, REDEMPTION_CONTEXT_LENGTH):
            raise DecodeError("redemption_context must be exactly 0 or 32 bytes")
        if not isinstance(self.origin_info, tuple):
            raise DecodeError("origin_info must be a tuple of server names")
        names: list[bytes] = []
        for name in self.origin_info:
            try:
                raw = name.encode("ascii")
            except (UnicodeEncodeError, AttributeError) as e:
                raise DecodeError("origin_info names must be ASCII strings") from e
            _check_server_name(raw, "origin_info name")
            names.append(raw)
        origin = b",".join(names)
        if len(origin) > MAX_ORIGIN_INFO_LENGTH:
            raise DecodeError("origin_info is longer than 65535 bytes")
        encoded = b"".join(
            (
                _U16.pack(self.token_type),
                _U16.pack(len(issuer)),
                issuer,
                _U8.pack(len(context)),
                context,
                _U16.pack(len(origin)),
                origin,
            )
        )
        object.__setattr__(self, "_encoded", encoded)
        object.__setattr__(self, "_digest", hashlib.sha256(encoded).digest())

    @classmethod
    def _prevalidated(
        cls,
        token_type: int,
        issuer_name: str,
        redemption_context: bytes,
        origin_info: tuple[str, ...],
        encoded: bytes,
        digest: bytes,
    ) -> TokenChallenge:
        """A challenge from fields a validated template already encoded and hashed.

        For :class:`~pat_middleware.policy.contexts.ChallengeTemplate` only: skips re-validation,
        re-encoding and re-hashing on the redemption path.
        """
        challenge = object.__new__(cls)
        set_ = object.__setattr__
        set_(challenge, "token_type", token_type)
        set_(challenge, "issuer_name", issuer_name)
        set_(challenge, "redemption_context", redemption_context)
        set_(challenge, "origin_info", origin_info)
        set_(challenge, "_encoded", encoded)
        set_(challenge, "_digest", digest)
        return challenge

    @property
    def digest(self) -> bytes:
        """SHA-256 of the encoded challenge: the ``challenge_digest`` a token must carry."""
        return self._digest

    def to_bytes(self) -> bytes:
        return self._encoded

    @classmethod
    def from_bytes(cls, data: bytes) -> TokenChallenge:
        """Parse exactly one TokenChallenge; trailing bytes are an error."""
        data = bytes(data)
        reader = _Reader(data, "TokenChallenge")
        token_type = reader.u16()
        issuer = reader.vector(2)
        context = reader.vector(1)
        origin = reader.vector(2)
        reader.end()
        if len(context) not in (0, REDEMPTION_CONTEXT_LENGTH):
            raise DecodeError("redemption_context must be exactly 0 or 32 bytes")
        _check_server_name(issuer, "issuer_name")
        origin_info: tuple[str, ...] = ()
        if origin:
            for name in origin.split(b","):
                _check_server_name(name, "origin_info name")
            origin_info = tuple(origin.decode("ascii").split(","))
        challenge = cls(token_type, issuer.decode("ascii"), context, origin_info)
        # Validation is strict enough that encoding is canonical; keep the belt and braces.
        if challenge.to_bytes() != data:  # pragma: no cover - defensive
            raise DecodeError("TokenChallenge does not round-trip")
        return challenge


@dataclass(frozen=True, slots=True)
class Token:
    """A Token (RFC 9577 §2.2.1). ``authenticator`` is Nk bytes, Nk set by the issuer key."""

    token_type: int
    nonce: bytes = field(repr=False)
    challenge_digest: bytes
    token_key_id: bytes
    authenticator: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not 0 <= self.token_type <= 0xFFFF:
            raise DecodeError("token_type must fit in 16 bits")
        for name, value, size in (
            ("nonce", self.nonce, NONCE_LENGTH),
            ("challenge_digest", self.challenge_digest, DIGEST_LENGTH),
            ("token_key_id", self.token_key_id, TOKEN_KEY_ID_LENGTH),
        ):
            if not isinstance(value, bytes) or len(value) != size:
                raise DecodeError(f"{name} must be {size} bytes")
        if not isinstance(self.authenticator, bytes) or not self.authenticator:
            raise DecodeError("authenticator must be non-empty bytes")

    def __repr__(self) -> str:
        # nonce and authenticator stay out: they are the spendable part of a token.
        return (
            f"Token(token_type={self.token_type}, token_key_id={self.token_key_id.hex()}, "
            f"challenge_digest={self.challenge_digest.hex()})"
        )

    @property
    def authenticator_input(self) -> bytes:
        """The 98 bytes the issuer signed: type | nonce | challenge_digest | token_key_id."""
        return b"".join(
            (_U16.pack(self.token_type), self.nonce, self.challenge_digest, self.token_key_id)
        )

    def to_bytes(self) -> bytes:
        return self.authenticator_input + self.authenticator

    @classmethod
    def from_bytes(cls, data: bytes, authenticator_length: int) -> Token:
        """Parse a token whose authenticator is exactly ``authenticator_length`` bytes."""
        data = bytes(data)
        if len(data) != AUTHENTICATOR_INPUT_LENGTH + authenticator_length:
            raise DecodeError(
                f"token is {len(data)} bytes, expected "
                f"{AUTHENTICATOR_INPUT_LENGTH + authenticator_length}"
            )
        if authenticator_length < 1:
            raise DecodeError("authenticator must be non-empty bytes")
        # The length check above fixes every field's size, which is all __post_init__ would
        # check: set the fields directly (this runs once per redemption).
        token = object.__new__(cls)
        setattr_ = object.__setattr__
        setattr_(token, "token_type", _U16.unpack_from(data)[0])
        setattr_(token, "nonce", data[NONCE_OFFSET:CHALLENGE_DIGEST_OFFSET])
        setattr_(token, "challenge_digest", data[CHALLENGE_DIGEST_OFFSET:TOKEN_KEY_ID_OFFSET])
        setattr_(token, "token_key_id", data[TOKEN_KEY_ID_OFFSET:AUTHENTICATOR_INPUT_LENGTH])
        setattr_(token, "authenticator", data[AUTHENTICATOR_INPUT_LENGTH:])
        return token


@dataclass(frozen=True, slots=True)
class ChallengeTemplate:
    """Everything of a TokenChallenge but its context, pre-encoded.

    ``encode(context)`` is two concatenations, so per-request challenge building and
    redemption-time rebuilding cost one hash each.
    """

    token_type: int
    issuer_name: str
    origin_info: tuple[str, ...] = ()
    _prefix: bytes = field(init=False, repr=False, compare=False)
    _suffix: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Let TokenChallenge validate the fields once, then split its encoding.
        probe = TokenChallenge(self.token_type, self.issuer_name, b"", self.origin_info)
        raw = probe.to_bytes()
        issuer_end = 4 + len(self.issuer_name)
        object.__setattr__(self, "_prefix", raw[:issuer_end])
        object.__setattr__(self, "_suffix", raw[issuer_end + 1 :])

    def encode(self, context: bytes) -> bytes:
        return self._prefix + _U8.pack(len(context)) + context + self._suffix

    def digest(self, context: bytes) -> bytes:
        return hashlib.sha256(self.encode(context)).digest()

    def match(self, context: bytes, digest: bytes) -> TokenChallenge | None:
        """The challenge for ``context`` if its digest is ``digest`` (constant-time compare).

        Encodes and hashes once; the challenge object reuses both.
        """
        encoded = self.encode(context)
        own = hashlib.sha256(encoded).digest()
        if not hmac.compare_digest(own, digest):
            return None
        return TokenChallenge._prevalidated(
            self.token_type, self.issuer_name, context, self.origin_info, encoded, own
        )

    def challenge(self, context: bytes) -> TokenChallenge:
        return TokenChallenge(self.token_type, self.issuer_name, context, self.origin_info)


def peek_token_type(data: bytes) -> int:
    """The token_type of an encoded token, read without parsing the rest."""
    if len(data) < 2:
        raise DecodeError("token is shorter than its type field")
    value: int = _U16.unpack_from(data)[0]
    return value


class _Reader:
    """Bounds-checked cursor over a byte string; every short read is a DecodeError."""

    __slots__ = ("_data", "_pos", "_what")

    def __init__(self, data: bytes, what: str) -> None:
        self._data = data
        self._pos = 0
        self._what = what

    def take(self, n: int) -> bytes:
        end = self._pos + n
        if end > len(self._data):
            raise DecodeError(f"{self._what} is truncated")
        chunk = self._data[self._pos : end]
        self._pos = end
        return chunk

    def u8(self) -> int:
        value: int = _U8.unpack(self.take(1))[0]
        return value

    def u16(self) -> int:
        value: int = _U16.unpack(self.take(2))[0]
        return value

    def vector(self, prefix: int) -> bytes:
        length = self.u8() if prefix == 1 else self.u16()
        return self.take(length)

    def end(self) -> None:
        if self._pos != len(self._data):
            raise DecodeError(f"{self._what} has {len(self._data) - self._pos} trailing bytes")


__all__ = [
    "AUTHENTICATOR_INPUT_LENGTH",
    "GREASE_TOKEN_TYPES",
    "NONCE_LENGTH",
    "TOKEN_TYPE_BLIND_RSA",
    "TOKEN_TYPE_VOPRF",
    "ChallengeTemplate",
    "Token",
    "TokenChallenge",
    "peek_token_type",
]
