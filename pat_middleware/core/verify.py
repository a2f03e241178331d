"""Token verification for any token type (RFC 9577 §2.2, RFC 9578 §5.4, §6.4), step by step
in spec order.

The algorithm is the key's business (:class:`~pat_middleware.core.keys.TokenKey`):
:func:`verify_authenticator` asks the key and returns a bool. :func:`verify_token` runs every
check and raises :class:`TokenError` with one :class:`Reason`; it does no I/O and keeps no
state (replay and expiry are the policy's business). The token types it accepts are those of
the keys in the ring, narrowed by ``allowed_types``: a token never chooses what is accepted.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterable
from dataclasses import FrozenInstanceError

from ..errors import Reason, TokenError
from .keyring import KeyRing, TrustedKey
from .keys import TokenKey
from .wire import (
    AUTHENTICATOR_INPUT_LENGTH,
    CHALLENGE_DIGEST_OFFSET,
    GREASE_TOKEN_TYPES,
    NONCE_OFFSET,
    TOKEN_KEY_ID_OFFSET,
    Token,
    TokenChallenge,
)

#: Given a token's challenge_digest, the accepted challenge with that digest, or None. May
#: raise TokenError itself (for example ``expired`` for a challenge it knows but no longer
#: accepts). Must compare digests in constant time.
ChallengeMatcher = Callable[[bytes], "TokenChallenge | None"]


def verify_authenticator(key: TokenKey, token_input: bytes, authenticator: bytes) -> bool:
    """True when ``authenticator`` is valid for ``token_input`` under ``key``."""
    return key.verify(token_input, authenticator)


class VerifiedToken:
    """What a valid token proved: which issuer and key accepted it, for which challenge.

    Holds the token's bytes; the fields are read from them on demand (the policy needs only
    the nonce or digest, so no :class:`Token` is built per request).
    """

    __slots__ = ("_data", "challenge", "issuer_name", "key")

    _data: bytes
    challenge: TokenChallenge
    issuer_name: str
    key: TokenKey

    def __init__(
        self, data: bytes, challenge: TokenChallenge, issuer_name: str, key: TokenKey
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

    def _fields(self) -> tuple[bytes, TokenChallenge, str, TokenKey]:
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
    allowed_types: frozenset[int] | None = None,
) -> VerifiedToken:
    """Verify an encoded token against the accepted keys and challenges.

    ``challenges`` is either the accepted challenges or a :data:`ChallengeMatcher`. The
    token types accepted are those the ring's keys verify, and of those only
    ``allowed_types`` when given. Order: type, key lookup, exact length, challenge digest,
    authenticator. Raises :class:`TokenError` with the reason of the first failing step.
    """
    # This runs once per redemption: fields are sliced from the bytes, not parsed into a
    # Token, and the common case takes no detours.
    if type(data) is not bytes:
        data = bytes(memoryview(data))  # bytes-like only: bytes(5) would be five zero bytes
    size = len(data)
    if size < 2:
        raise TokenError(Reason.MALFORMED, "token is shorter than 2 bytes")
    token_type = (data[0] << 8) | data[1]
    if token_type not in keys.token_types or (
        allowed_types is not None and token_type not in allowed_types
    ):
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
    for trusted in candidates:  # the first entry of the challenge's issuer
        if _same_name(name, trusted.issuer_name):
            break
    else:
        trusted = None
    if challenge.token_type != token_type or trusted is None:
        raise TokenError(Reason.CHALLENGE_MISMATCH, "challenge names another token type or issuer")

    if not key.verify(data[:AUTHENTICATOR_INPUT_LENGTH], data[AUTHENTICATOR_INPUT_LENGTH:]):
        raise TokenError(Reason.BAD_SIGNATURE, "authenticator does not verify")
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
    "ChallengeMatcher",
    "KeyRing",
    "TrustedKey",
    "VerifiedToken",
    "match_challenge",
    "verify_authenticator",
    "verify_token",
]
