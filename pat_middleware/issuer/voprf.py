"""Privacy Pass issuance for token type 0x0001, VOPRF (P-384, SHA-384) (RFC 9578 §5),
without I/O.

Wire messages, exact sizes::

    TokenRequest  = token_type (0x0001) | truncated_token_key_id (1) | blinded_msg (Ne = 49)   52
    TokenResponse = evaluate_msg (Ne = 49) | evaluate_proof (Ns + Ns = 96: c, s)             145
    Token         = 0x0001 | nonce (32) | challenge_digest (32) | token_key_id (32)
                    | authenticator (Nk = 48)                                               146

Issuer side (§5.2): :class:`VOPRFIssuingKey` turns TokenRequest bytes into TokenResponse bytes
with RFC 9497 BlindEvaluate (the DLEQ proof included); every request it refuses is an
:class:`IssuanceError` with the status RFC 9578 names (422; 400 for one too short to read).
Client side (§5.1, §5.3): :func:`begin_voprf_issuance` blinds a fresh token input, and
:meth:`VOPRFIssuanceState.finalize` checks the issuer's proof against pkI before unblinding
(RFC 9497 Finalize), so a response that does not prove it used the published key is refused.
Secret operations run in OpenSSL (:mod:`pat_middleware.tokens.oprf`).
"""

from __future__ import annotations

import secrets
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from ..core.wire import NONCE_LENGTH, TOKEN_TYPE_VOPRF, Token, TokenChallenge
from ..errors import DecodeError, IssuanceError
from ..tokens.oprf import (
    NE,
    PROOF_LENGTH,
    Point,
    Proof,
    blind,
    blind_evaluate,
    deserialize_element,
    finalize,
    serialize_element,
)
from ..tokens.voprf import VOPRFPublicKey, VOPRFTokenKey

#: token_type (u16) | truncated_token_key_id (u8), in front of blinded_msg.
_HEADER = struct.Struct("!HB")
VOPRF_TOKEN_REQUEST_LENGTH = _HEADER.size + NE
VOPRF_TOKEN_RESPONSE_LENGTH = NE + PROOF_LENGTH
_UNPROCESSABLE = 422
_BAD_GATEWAY = 502

RandomBytes = Callable[[int], bytes]


def truncate_key_id(token_key_id: bytes) -> int:
    """truncated_token_key_id: the least significant (last) byte of token_key_id."""
    return token_key_id[-1]


# --------------------------------------------------------------------------- wire messages


@dataclass(frozen=True, slots=True)
class VOPRFTokenRequest:
    """A type-1 TokenRequest (RFC 9578 §5.1). ``blinded_msg`` is a valid P-384 element."""

    truncated_token_key_id: int
    blinded_msg: bytes = field(repr=False)
    token_type: int = TOKEN_TYPE_VOPRF
    #: blinded_msg decoded, once (the check below does it anyway).
    _element: Point = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.token_type != TOKEN_TYPE_VOPRF:
            raise DecodeError(f"TokenRequest token_type must be {TOKEN_TYPE_VOPRF}")
        if not 0 <= self.truncated_token_key_id <= 0xFF:
            raise DecodeError("truncated_token_key_id must fit in 8 bits")
        if not isinstance(self.blinded_msg, bytes) or len(self.blinded_msg) != NE:
            raise DecodeError(f"blinded_msg must be {NE} bytes")
        # A point on P-384, never the identity.
        object.__setattr__(self, "_element", deserialize_element(self.blinded_msg))

    @property
    def blinded_element(self) -> Point:
        return self._element

    def to_bytes(self) -> bytes:
        return _HEADER.pack(self.token_type, self.truncated_token_key_id) + self.blinded_msg

    @classmethod
    def from_bytes(cls, data: bytes) -> VOPRFTokenRequest:
        """Parse exactly one 52-byte type-1 TokenRequest."""
        data = bytes(data)
        if len(data) != VOPRF_TOKEN_REQUEST_LENGTH:
            raise DecodeError(
                f"TokenRequest is {len(data)} bytes, expected {VOPRF_TOKEN_REQUEST_LENGTH}"
            )
        token_type, truncated = _HEADER.unpack_from(data)
        return cls(truncated, data[_HEADER.size :], token_type)


@dataclass(frozen=True, slots=True)
class VOPRFTokenResponse:
    """A type-1 TokenResponse (RFC 9578 §5.2): evaluate_msg and the DLEQ proof (c, s)."""

    evaluate_msg: bytes = field(repr=False)
    evaluate_proof: bytes = field(repr=False)
    #: Both decoded, once (the checks below do it anyway).
    _element: Point = field(init=False, repr=False, compare=False)
    _proof: Proof = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.evaluate_msg, bytes) or len(self.evaluate_msg) != NE:
            raise DecodeError(f"evaluate_msg must be {NE} bytes")
        if not isinstance(self.evaluate_proof, bytes) or len(self.evaluate_proof) != PROOF_LENGTH:
            raise DecodeError(f"evaluate_proof must be {PROOF_LENGTH} bytes")
        object.__setattr__(self, "_element", deserialize_element(self.evaluate_msg))
        object.__setattr__(self, "_proof", Proof.from_bytes(self.evaluate_proof))  # c, s < n

    @property
    def evaluated_element(self) -> Point:
        return self._element

    @property
    def proof(self) -> Proof:
        return self._proof

    def to_bytes(self) -> bytes:
        return self.evaluate_msg + self.evaluate_proof

    @classmethod
    def from_bytes(cls, data: bytes) -> VOPRFTokenResponse:
        """Parse exactly one 145-byte type-1 TokenResponse."""
        data = bytes(data)
        if len(data) != VOPRF_TOKEN_RESPONSE_LENGTH:
            raise DecodeError(
                f"TokenResponse is {len(data)} bytes, expected {VOPRF_TOKEN_RESPONSE_LENGTH}"
            )
        return cls(data[:NE], data[NE:])


# --------------------------------------------------------------------------------- issuer


class VOPRFIssuingKey:
    """An issuer's type-1 key with its not-before, answering token requests (§5.2)."""

    __slots__ = ("key", "not_before")

    def __init__(self, key: VOPRFTokenKey, not_before: int | None = None) -> None:
        self.key = key
        self.not_before = not_before

    def __repr__(self) -> str:
        return f"VOPRFIssuingKey({self.key!r}, not_before={self.not_before})"

    @property
    def public(self) -> VOPRFPublicKey:
        return self.key.public

    @property
    def request_length(self) -> int:
        return VOPRF_TOKEN_REQUEST_LENGTH

    def issue(self, request: bytes, *, r: int | None = None) -> bytes:
        """TokenResponse bytes for TokenRequest bytes (its type and truncated key id already
        matched to this key). Raises :class:`IssuanceError` 422 for a blinded_msg of the
        wrong size or not a valid element (RFC 9578 §5.2). ``r`` injects the proof nonce
        (test vectors only)."""
        blinded_msg = bytes(request[_HEADER.size :])
        if len(blinded_msg) != NE:
            raise IssuanceError(f"blinded_msg is {len(blinded_msg)} bytes, not Ne = {NE}", 422)
        try:
            element = deserialize_element(blinded_msg)
        except DecodeError:
            raise IssuanceError("blinded_msg is not a P-384 element", _UNPROCESSABLE) from None
        evaluated, proof = blind_evaluate(self.key.secret_key, element, r=r)
        return serialize_element(evaluated) + proof.to_bytes()


# --------------------------------------------------------------------------------- client


@dataclass(frozen=True, slots=True, repr=False)
class VOPRFIssuanceState:
    """What a client keeps between its TokenRequest and the issuer's answer (secret: the
    blind)."""

    key: VOPRFPublicKey
    token_input: bytes
    blind: int
    blinded_element: Point

    def __repr__(self) -> str:
        return f"VOPRFIssuanceState(key={self.key!r})"

    @property
    def response_length(self) -> int:
        return VOPRF_TOKEN_RESPONSE_LENGTH

    def finalize(self, response: bytes) -> Token:
        """Check the issuer's proof against pkI, unblind, and build the Token (§5.3).

        Raises :class:`DecodeError` for a malformed response and :class:`IssuanceError`
        (502) when the proof does not verify.
        """
        parsed = VOPRFTokenResponse.from_bytes(response)
        try:
            output = finalize(
                self.token_input,
                self.blind,
                parsed.evaluated_element,
                self.blinded_element,
                self.key.element.point,
                parsed.proof,
            )
        except DecodeError:
            raise IssuanceError(
                "the issuer's evaluation proof does not verify under the published key",
                status=_BAD_GATEWAY,
            ) from None
        return Token.from_bytes(self.token_input + output, len(output))


def begin_voprf_issuance(
    challenge: TokenChallenge,
    key: VOPRFPublicKey,
    *,
    rng: RandomBytes = secrets.token_bytes,
    nonce: bytes | None = None,
    blind_scalar: int | None = None,
) -> tuple[VOPRFTokenRequest, VOPRFIssuanceState]:
    """Blind a fresh token input for ``challenge`` under ``key`` (RFC 9578 §5.1).

    ``nonce`` is drawn from ``rng`` unless given, the blind from OpenSSL unless
    ``blind_scalar`` is given (test vectors only). Raises :class:`IssuanceError` when the
    challenge is not token type 1.
    """
    if challenge.token_type != TOKEN_TYPE_VOPRF:
        raise IssuanceError("the challenge is not for token type 1 (VOPRF)", status=400)
    if nonce is None:
        nonce = rng(NONCE_LENGTH)
    if len(nonce) != NONCE_LENGTH:
        raise ValueError(f"nonce must be {NONCE_LENGTH} bytes")
    token_input = TOKEN_TYPE_VOPRF.to_bytes(2, "big") + nonce + challenge.digest + key.token_key_id
    scalar, blinded = blind(token_input, blind=blind_scalar)
    request = VOPRFTokenRequest(truncate_key_id(key.token_key_id), serialize_element(blinded))
    return request, VOPRFIssuanceState(key, token_input, scalar, blinded)


__all__ = [
    "VOPRF_TOKEN_REQUEST_LENGTH",
    "VOPRF_TOKEN_RESPONSE_LENGTH",
    "VOPRFIssuanceState",
    "VOPRFIssuingKey",
    "VOPRFTokenRequest",
    "VOPRFTokenResponse",
    "begin_voprf_issuance",
    "truncate_key_id",
]
