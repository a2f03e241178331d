"""The browser's side of Private State Tokens, for tests and tooling (sans-IO).

Chromium is the real client; this one lets tests and ``pat-middleware`` build exact messages:

    request, pending = begin_issuance(commitment.batch_size)
    # ... send request.to_header() as Sec-Private-State-Token, read the answer ...
    tokens = finalize_issuance(pending, IssueResponse.from_header(answer), commitment)
    redeem = tokens[0].redeem_request("https://site.example", int(time.time()))
    # ... send redeem.to_header() to the redemption endpoint ...

:func:`finalize_issuance` checks the issuer's batched DLEQ proof (RFC 9497 VerifyProof)
against the committed key before unblinding: a response that does not verify raises
:class:`DecodeError`.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..errors import DecodeError
from ..tokens.oprf import GENERATOR, Point, blind, unblind, verify_proof
from .pst_wire import (
    NONCE_LENGTH,
    ClientData,
    IssueRequest,
    IssueResponse,
    KeyCommitment,
    RedeemRequest,
)


@dataclass(frozen=True, slots=True, repr=False)
class PSTToken:
    """An unblinded token: the nonce and W = k * HashToGroup(nonce) under key ``key_id``."""

    key_id: int
    nonce: bytes
    w: Point

    def __repr__(self) -> str:
        return f"PSTToken(key_id={self.key_id})"

    def redeem_request(self, redeeming_origin: str, timestamp: int) -> RedeemRequest:
        """The redemption value Chromium would send for this token from ``redeeming_origin``."""
        client_data = ClientData(redeeming_origin, timestamp).to_cbor()
        return RedeemRequest(self.key_id, self.nonce, self.w, client_data)


@dataclass(frozen=True, slots=True, repr=False)
class PendingIssuance:
    """What the client keeps between the request and the answer (the blinds are secret)."""

    nonces: tuple[bytes, ...]
    blinds: tuple[int, ...] = field(repr=False)
    blinded: tuple[Point, ...]

    def __repr__(self) -> str:
        return f"PendingIssuance(count={len(self.nonces)})"


def begin_issuance(
    count: int, *, nonces: Sequence[bytes] | None = None
) -> tuple[IssueRequest, PendingIssuance]:
    """Blind ``count`` fresh 64-byte nonces: B_i = r_i * HashToGroup(nonce_i)."""
    chosen = (
        tuple(nonces)
        if nonces is not None
        else tuple(secrets.token_bytes(NONCE_LENGTH) for _ in range(count))
    )
    if len(chosen) != count or any(len(n) != NONCE_LENGTH for n in chosen):
        raise ValueError(f"need {count} nonces of {NONCE_LENGTH} bytes")
    pairs = [blind(nonce) for nonce in chosen]
    blinds = tuple(scalar for scalar, _ in pairs)
    blinded = tuple(element for _, element in pairs)
    return IssueRequest(blinded), PendingIssuance(chosen, blinds, blinded)


def finalize_issuance(
    pending: PendingIssuance, response: IssueResponse, commitment: KeyCommitment
) -> list[PSTToken]:
    """Verify the batched proof for the first ``issued`` blinded elements against the
    committed key, then unblind: W_i = r_i^-1 * Z_i. Raises :class:`DecodeError`."""
    key = commitment.find(response.key_id)
    if key is None:
        raise DecodeError(f"the commitment has no key {response.key_id}")
    issued = len(response.evaluated)
    if issued > len(pending.blinded):
        raise DecodeError("the issuer answered more tokens than were asked for")
    blinded = list(pending.blinded[:issued])
    evaluated = list(response.evaluated)
    if not verify_proof(GENERATOR, key.public_key.point, blinded, evaluated, response.proof):
        raise DecodeError("VerifyError: the issuance proof does not verify")
    return [
        PSTToken(response.key_id, nonce, unblind(scalar, element))
        for nonce, scalar, element in zip(
            pending.nonces[:issued], pending.blinds[:issued], evaluated, strict=True
        )
    ]


__all__ = ["PSTToken", "PendingIssuance", "begin_issuance", "finalize_issuance"]
