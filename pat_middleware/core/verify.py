"""Token verification for type 2 (RFC 9577 §2.2, RFC 9578 §6.4), step by step in spec order.

:func:`verify_authenticator` is the primitive and returns a bool. :func:`verify_token` runs
every check and raises :class:`TokenError` with one :class:`Reason`; it does no I/O and keeps
no state (replay and expiry are the policy's business).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterable, Iterator
from dataclasses import FrozenInstanceError, dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from ..errors import Reason, TokenError
from ..tokens.blind_rsa import PSS_SALT_LENGTH, IssuerKey
from .wire import (
    AUTHENTICATOR_INPUT_LENGTH,
    CHALLENGE_DIGEST_OFFSET,
    GREASE_TOKEN_TYPES,
    NONCE_OFFSET,
    TOKEN_KEY_ID_OFFSET,
    TOKEN_TYPE_BLIND_RSA,
    Token,
    TokenChallenge,
)

#: RSASSA-PSS with SHA-384, MGF1-SHA-384 and a 48-byte salt. Built once, shared by every call.
_PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=PSS_SALT_LENGTH)
_SHA384 = hashes.SHA384()

#: Given a token's challenge_digest, the accepted challenge with that digest, or None. May
#: raise TokenError itself (for example ``expired`` for a challenge it knows but no longer
#: accepts). Must compare digests in constant time.
ChallengeMatcher = Callable[[bytes], "TokenChallenge | None"]

#: Token types this library can verify by itself (type 1 needs the issuer's private key).
VERIFIABLE_TOKEN_TYPES = frozenset({TOKEN_TYPE_BLIND_RSA})


def verify_authenticator(key: IssuerKey, token_input: bytes, authenticator: bytes) -> bool:
    """True when ``authenticator`` is a valid RSA-PSS signature of ``token_input``."""
    try:
        key.public_key.verify(authenticator, token_input, _PSS, _SHA384)
    except InvalidSignature:
        return False
    return True


@dataclass(frozen=True, slots=True)
class TrustedKey:
    """An issuer key the origin accepts, tied to the issuer name its challenges carry."""

    issuer_name: str
    key: IssuerKey


#: (token_key_id, its entries, its entries by token type)
_Group = tuple[bytes, tuple[TrustedKey, ...], dict[int, tuple[TrustedKey, ...]]]


def _by_type(group: tuple[TrustedKey, ...]) -> dict[int, tuple[TrustedKey, ...]]:
    by_type: dict[int, tuple[TrustedKey, ...]] = {}
    for entry in group:
        by_type[entry.key.token_type] = (*by_type.get(entry.key.token_type, ()), entry)
    return by_type


class KeyRing:
    """The keys an origin currently accepts, looked up by ``token_key_id``.

    One key may be trusted for several issuers (two directories may list it); each
    (issuer, key) pair is held once. Lookup compares each distinct id in constant time; a
    ring holds a handful of keys.
    """

    __slots__ = ("_entries", "_groups")

    def __init__(self, entries: Iterable[TrustedKey] = ()) -> None:
        self._entries: tuple[TrustedKey, ...] = ()
        # Per token_key_id: every entry with it, and those entries by token type. Built
        # when the ring changes, never per lookup.
        self._groups: tuple[_Group, ...] = ()
        for entry in entries:
            self.add(entry)

    def add(self, entry: TrustedKey) -> None:
        name = entry.issuer_name.lower()
        if any(
            e.key.token_key_id == entry.key.token_key_id and e.issuer_name.lower() == name
            for e in self._entries
        ):
            return
        self._entries = (*self._entries, entry)
        by_id: dict[bytes, tuple[TrustedKey, ...]] = {}
        for e in self._entries:
            by_id[e.key.token_key_id] = (*by_id.get(e.key.token_key_id, ()), e)
        self._groups = tuple((key_id, group, _by_type(group)) for key_id, group in by_id.items())

    def find(self, token_key_id: bytes) -> TrustedKey | None:
        """The first entry with this key id."""
        found = self.find_all(token_key_id)
        return found[0] if found else None

    def find_all(
        self, token_key_id: bytes, token_type: int | None = None
    ) -> tuple[TrustedKey, ...]:
        """Every entry with this key id (one per issuer trusting the key), in the order
        added; with ``token_type``, only the entries for that token type."""
        for key_id, group, by_type in self._groups:
            if hmac.compare_digest(key_id, token_key_id):
                return group if token_type is None else by_type.get(token_type, ())
        return ()

    def __iter__(self) -> Iterator[TrustedKey]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"KeyRing({len(self._entries)} keys)"


class VerifiedToken:
    """What a valid token proved: which issuer and key accepted it, for which challenge.

    Holds the token's bytes; the fields are read from them on demand (the policy needs only
    the nonce or digest, so no :class:`Token` is built per request).
    """

    __slots__ = ("_data", "challenge", "issuer_name", "key")

    _data: bytes
    challenge: TokenChallenge
    issuer_name: str
    key: IssuerKey

    def __init__(
        self, data: bytes, challenge: TokenChallenge, issuer_name: str, key: IssuerKey
    ) -> None:
        set_ = object.__setattr__  # frozen, as the dataclass it replaces
        set_(self, "_data", data)
        set_(self, "challenge", challenge)
        set_(self, "issuer_name", issuer_name)
        set_(self, "key", key)

    def __setattr__(self, name: str, value: object) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r}")

    def _fields(self) -> tuple[bytes, TokenChallenge, str, IssuerKey]:
        return (self._data, self.challenge, self.issuer_name, self.key)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, VerifiedToken):
            return NotImplemented
        return self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        # The nonce and authenticator stay out: they are the spendable part of a token.
        return (
            f"VerifiedToken(issuer_name={self.issuer_name!r}, token_type={self.token_type}, "
            f"token_key_id={self.token_key_id.hex()})"
        )

    @property
    def token(self) -> Token:
        return Token.from_bytes(self._data, self.key.authenticator_length)

    @property
    def token_type(self) -> int:
        return (self._data[0] << 8) | self._data[1]

    @property
    def token_key_id(self) -> bytes:
        return self._data[TOKEN_KEY_ID_OFFSET:AUTHENTICATOR_INPUT_LENGTH]

    @property
    def nonce(self) -> bytes:
        return self._data[NONCE_OFFSET:CHALLENGE_DIGEST_OFFSET]

    @property
    def challenge_digest(self) -> bytes:
        return self._data[CHALLENGE_DIGEST_OFFSET:TOKEN_KEY_ID_OFFSET]


def verify_token(
    data: bytes,
    *,
    keys: KeyRing,
    challenges: Iterable[TokenChallenge] | ChallengeMatcher,
    allowed_types: frozenset[int] = VERIFIABLE_TOKEN_TYPES,
) -> VerifiedToken:
    """Verify an encoded token against the accepted keys and challenges.

    ``challenges`` is either the accepted challenges or a :data:`ChallengeMatcher`. Order:
    type, key lookup, exact length, challenge digest, signature. Raises
    :class:`TokenError` with the reason of the first failing step.
    """
    # This runs once per redemption: fields are sliced from the bytes, not parsed into a
    # Token, and the common case takes no detours.
    if type(data) is not bytes:
        data = bytes(memoryview(data))  # bytes-like only: bytes(5) would be five zero bytes
    size = len(data)
    if size < 2:
        raise TokenError(Reason.MALFORMED, "token is shorter than 2 bytes")
    token_type = (data[0] << 8) | data[1]
    if token_type not in allowed_types or token_type not in VERIFIABLE_TOKEN_TYPES:
        if token_type in GREASE_TOKEN_TYPES:
            raise TokenError(Reason.UNSUPPORTED_TYPE, f"grease token type 0x{token_type:04x}")
        raise TokenError(Reason.UNSUPPORTED_TYPE, f"token type 0x{token_type:04x}")
    if size < AUTHENTICATOR_INPUT_LENGTH:
        raise TokenError(Reason.WRONG_LENGTH, f"token is {size} bytes")

    # Every entry of a group has the same key: the id hashes the key's bytes.
    candidates = keys.find_all(data[TOKEN_KEY_ID_OFFSET:AUTHENTICATOR_INPUT_LENGTH], token_type)
    if not candidates:
        raise TokenError(Reason.UNKNOWN_KEY, "token_key_id matches no accepted key")
    key = candidates[0].key
    if size != key.token_length:
        raise TokenError(
            Reason.WRONG_LENGTH, f"token is {size} bytes, key needs {key.token_length}"
        )

    digest = data[CHALLENGE_DIGEST_OFFSET:TOKEN_KEY_ID_OFFSET]
    challenge = challenges(digest) if callable(challenges) else match_challenge(digest, challenges)
    if challenge is None:
        raise TokenError(Reason.CHALLENGE_MISMATCH, "challenge_digest matches no challenge")
    name = challenge.issuer_name
    trusted = next((c for c in candidates if _same_name(name, c.issuer_name)), None)
    if challenge.token_type != token_type or trusted is None:
        raise TokenError(Reason.CHALLENGE_MISMATCH, "challenge names another token type or issuer")

    token_input = data[:AUTHENTICATOR_INPUT_LENGTH]
    try:
        key.public_key.verify(data[AUTHENTICATOR_INPUT_LENGTH:], token_input, _PSS, _SHA384)
    except InvalidSignature:
        raise TokenError(Reason.BAD_SIGNATURE, "authenticator does not verify") from None
    return VerifiedToken(data, challenge, trusted.issuer_name, key)


def match_challenge(digest: bytes, challenges: Iterable[TokenChallenge]) -> TokenChallenge | None:
    """The first challenge whose digest equals ``digest`` (constant-time compares)."""
    for candidate in challenges:
        if hmac.compare_digest(candidate.digest, digest):
            return candidate
    return None


def _same_name(a: str, b: str) -> bool:
    return a == b or a.lower() == b.lower()


__all__ = [
    "VERIFIABLE_TOKEN_TYPES",
    "ChallengeMatcher",
    "KeyRing",
    "TrustedKey",
    "VerifiedToken",
    "match_challenge",
    "verify_authenticator",
    "verify_token",
]
