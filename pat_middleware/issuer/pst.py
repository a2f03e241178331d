"""A sans-IO Private State Token issuer (``PrivateStateTokenV1VOPRF``) and redeemer.

:class:`PSTIssuer` turns ``Sec-Private-State-Token`` request values into response values:

* :meth:`PSTIssuer.issue`: parse the browser's blinded elements (pst-notes §3), evaluate the
  first ``issued`` of them under one key, Z_i = k * B_i, and prove it with one batched DLEQ
  proof (RFC 9497 GenerateProof with ComputeCompositesFast, transcripts over compressed
  points, pst-notes §6). Malformed input raises :class:`IssuanceError` (400).
* :meth:`PSTIssuer.redeem`: parse the token (pst-notes §4), check W == k * HashToGroup(nonce)
  in constant time, record the nonce as spent in a replay store until the key expires, and
  answer a signed redemption record (:mod:`pat_middleware.core.redemption_record`) with its
  lifetime. Refusals raise :class:`TokenError` with a reason: ``malformed``,
  ``unknown_key``, ``expired`` (the key), ``bad_signature`` (W is wrong), ``replayed``; a
  replay store that cannot answer raises :class:`StoreUnavailable` (fail closed).

HTTP lives in :mod:`.pst_server`; keys in :mod:`.pst_keys`; the messages in :mod:`.pst_wire`.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..core.redemption_record import (
    RecordKeySet,
    RedemptionRecord,
    new_record_id,
    normalize_origin,
    sign_redemption_record,
)
from ..errors import ConfigurationError, DecodeError, IssuanceError, Reason, TokenError
from ..stores import MemoryReplayStore, ReplayStore
from ..tokens.oprf import blind_evaluate_batch, hash_to_group
from .pst_keys import MICROSECONDS, PSTKeySet, now_us
from .pst_wire import (
    MAX_BATCH_SIZE,
    IssueRequest,
    IssueResponse,
    KeyCommitment,
    RedeemRequest,
)

#: Tokens per issuance unless configured (Chromium asks for ``batchsize`` at a time).
DEFAULT_BATCH_SIZE = 10
#: Redemption record lifetime unless configured (seconds): a day, so two redemptions cover
#: Chromium's 48-hour window of two token-consuming redemptions per site.
DEFAULT_RECORD_LIFETIME = 86_400
#: Replay-store keys: this prefix and SHA-256 of the token nonce.
REPLAY_KEY_PREFIX = b"pst-nonce:"
#: Spent nonces are remembered this long past their key's expiry (clock differences).
REPLAY_MARGIN = 300


@dataclass(frozen=True, slots=True)
class IssueResult:
    """An issuance answer: the ``Sec-Private-State-Token`` value and what it carries."""

    header: str
    key_id: int
    issued: int


@dataclass(frozen=True, slots=True)
class Redemption:
    """A redemption answer: the record for ``Sec-Private-State-Token``, its lifetime for
    ``Sec-Private-State-Token-Lifetime``, and the claims it states."""

    record: str
    lifetime: int
    claims: RedemptionRecord


def replay_key(nonce: bytes) -> bytes:
    """The replay-store key of a token nonce."""
    return REPLAY_KEY_PREFIX + hashlib.sha256(nonce).digest()


class PSTIssuer:
    """Issues and redeems Private State Tokens under a :class:`PSTKeySet`.

    ``issuer_origin`` is the origin browsers know the issuer by (it goes into every record's
    ``iss``). ``batch_size`` is the commitment's ``batchsize`` and the most tokens one
    issuance signs. ``replay_store`` remembers spent nonces (default: an in-process
    :class:`MemoryReplayStore`; use a shared one, e.g. Redis, for several workers).
    ``clock`` gives seconds since the epoch.
    """

    __slots__ = (
        "_batch_size", "_clock", "_keys", "_origin", "_published", "_record_lifetime", "_store",
    )  # fmt: skip

    def __init__(
        self,
        keys: PSTKeySet,
        *,
        issuer_origin: str,
        batch_size: int = DEFAULT_BATCH_SIZE,
        record_lifetime: int = DEFAULT_RECORD_LIFETIME,
        replay_store: ReplayStore | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        try:
            self._origin = normalize_origin(issuer_origin)
        except DecodeError as e:
            raise ConfigurationError("issuer_origin", str(e)) from None
        if type(batch_size) is not int or not 0 < batch_size <= MAX_BATCH_SIZE:
            raise ConfigurationError("batch_size", f"must be 1 to {MAX_BATCH_SIZE}")
        if type(record_lifetime) is not int or record_lifetime <= 0:
            raise ConfigurationError("record_lifetime", "must be a positive number of seconds")
        self._keys = keys
        self._batch_size = batch_size
        self._record_lifetime = record_lifetime
        self._store: ReplayStore = replay_store if replay_store is not None else MemoryReplayStore()
        self._clock = clock
        #: Document name -> (built at, valid until, body), microseconds: see _publish.
        self._published: dict[str, tuple[int, float, bytes]] = {}
        keys.commitment(now_us(clock()), batch_size)  # the configuration must make one

    def __repr__(self) -> str:
        return f"PSTIssuer(origin={self._origin!r}, keys={self._keys!r})"

    @property
    def origin(self) -> str:
        return self._origin

    @property
    def keys(self) -> PSTKeySet:
        return self._keys

    @property
    def batch_size(self) -> int:
        return self._batch_size

    @property
    def record_lifetime(self) -> int:
        return self._record_lifetime

    def _now(self, now: float | None) -> float:
        return self._clock() if now is None else now

    def commitment(self, now: float | None = None) -> KeyCommitment:
        """The key commitment browsers are given (pst-notes §2)."""
        return self._keys.commitment(now_us(self._now(now)), self._batch_size)

    def record_key_set(self, now: float | None = None) -> RecordKeySet:
        """The JWK Set origins verify records with."""
        return self._keys.record_key_set(now_us(self._now(now)))

    def commitment_body(self, now: float | None = None) -> bytes:
        """:meth:`commitment` as served (JSON), built again only when a key has expired."""
        at = now_us(self._now(now))
        expiries = [key.expiry_us for key in self._keys.token_keys if not key.expired(at)]
        return self._publish(
            "commitment",
            at,
            min(expiries, default=math.inf),
            lambda: self._keys.commitment(at, self._batch_size),
        )

    def record_key_set_body(self, now: float | None = None) -> bytes:
        """:meth:`record_key_set` as served, built again only when a retired key has left."""
        at = now_us(self._now(now))
        ends = [old.until_us for old in self._keys.retired_record_keys if old.until_us > at]
        return self._publish(
            "jwks", at, min(ends, default=math.inf), lambda: self._keys.record_key_set(at)
        )

    def _publish(
        self,
        name: str,
        at: int,
        until: float,
        build: Callable[[], KeyCommitment | RecordKeySet],
    ) -> bytes:
        """The body of a published document at ``at``: the keys are fixed, so it changes
        only at ``until`` (the next key to leave it); within [built, until) it is reused."""
        cached = self._published.get(name)
        if cached is not None and cached[0] <= at < cached[1]:
            return cached[2]
        body = build().to_bytes()
        self._published[name] = (at, until, body)
        return body

    # ------------------------------------------------------------------- issuance

    def issue(
        self,
        header: str | bytes,
        *,
        key_id: int | None = None,
        limit: int | None = None,
        now: float | None = None,
    ) -> IssueResult:
        """Answer an issuance request value.

        ``key_id`` picks the key (the trust label) instead of the newest signing one;
        ``limit`` signs fewer than ``batch_size`` tokens. Raises :class:`IssuanceError`:
        400 for a malformed value, 500 when ``key_id`` names no unexpired key, 503 when no
        key signs at ``now``.
        """
        at = now_us(self._now(now))
        try:
            request = IssueRequest.from_header(header)
        except DecodeError as e:
            raise IssuanceError(str(e), status=400) from None
        if key_id is None:
            key = self._keys.issuing_key(at)
            if key is None:
                raise IssuanceError("no token key signs now", status=503)
        else:
            chosen = self._keys.key(key_id)
            if chosen is None or chosen.expired(at):
                raise IssuanceError(f"no unexpired token key {key_id}", status=500)
            key = chosen
        issued = min(len(request.blinded), self._batch_size)
        if limit is not None:
            issued = min(issued, max(limit, 0))
        if issued == 0:
            raise IssuanceError("issuance limited to no tokens", status=403)
        blinded = list(request.blinded[:issued])
        try:
            evaluated, proof = blind_evaluate_batch(key.secret, blinded)
        except DecodeError as e:  # a composite that is the identity: negligible, but refused
            raise IssuanceError(str(e), status=400) from None
        response = IssueResponse(key.key_id, tuple(evaluated), proof)
        return IssueResult(response.to_header(), key.key_id, issued)

    # ----------------------------------------------------------------- redemption

    def redeem(self, header: str | bytes, *, now: float | None = None) -> Redemption:
        """Answer a redemption request value with a signed record (module docstring)."""
        moment = self._now(now)
        at = now_us(moment)
        try:
            request = RedeemRequest.from_header(header)
            client_data = request.parsed_client_data()
            redeeming_origin = normalize_origin(client_data.redeeming_origin)
        except DecodeError as e:
            raise TokenError(Reason.MALFORMED, str(e)) from None
        key = self._keys.key(request.key_id)
        if key is None:
            raise TokenError(Reason.UNKNOWN_KEY, f"no token key {request.key_id}")
        if key.expired(at):
            raise TokenError(Reason.EXPIRED, f"token key {request.key_id} has expired")
        try:
            expected = key.secret.multiply(hash_to_group(request.nonce))
        except DecodeError as e:  # HashToGroup gave the identity: negligible
            raise TokenError(Reason.MALFORMED, str(e)) from None
        if not expected == request.w:  # constant-time Point comparison
            raise TokenError(Reason.BAD_SIGNATURE, "the token does not verify")
        spent = replay_key(request.nonce)
        ttl = (key.expiry_us - at) / MICROSECONDS + REPLAY_MARGIN
        if not self._store.spend(spent, ttl):
            raise TokenError(Reason.REPLAYED, "this token was redeemed before")
        # Spent before signing: should signing fail, the token is lost (closed), not reusable.
        issued_at = math.floor(moment)
        claims = RedemptionRecord(
            issuer=self._origin,
            redeeming_origin=redeeming_origin,
            key_id=key.key_id,
            issued_at=issued_at,
            expires_at=issued_at + self._record_lifetime,
            record_id=new_record_id(),
            kid=self._keys.record_kid,
        )
        record = sign_redemption_record(claims, self._keys.record_key, kid=claims.kid)
        return Redemption(record, self._record_lifetime, claims)


__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_RECORD_LIFETIME",
    "IssueResult",
    "PSTIssuer",
    "Redemption",
    "replay_key",
]
