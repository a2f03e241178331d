"""Trust signals: what a request may carry to be let through.

The policy asks its signals in order; the first one present decides. A signal answers
``None`` (not present: ask the next), an :class:`Accepted` (with at most one replay key for
the policy to spend in its store), or a :class:`Refused` with a reason. Adding a signal is
one class here (or in a module of its own) and one entry in the policy's list; adapters do
not change.

* :class:`PrivateTokenSignal`: ``Authorization: PrivateToken token=...`` (RFC 9577 §2.2).
  Present even when refused: a token decides, whatever else the request carries.
* :class:`VerifiedSessionSignal`: the verified-session cookie, bound to the session cookie,
  that an accepted token earns for ``verified_duration`` seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Protocol

from ..core.headers import parse_authorization
from ..core.redemption_record import RedemptionRecord
from ..core.verify import TrustedKey, verify_token
from ..core.wire import AUTHENTICATOR_INPUT_LENGTH, GREASE_TOKEN_TYPES, TOKEN_KEY_ID_OFFSET
from ..discovery import KeySource
from ..errors import DecodeError, Reason, TokenError
from ..settings.model import Settings
from .decision import Decision, Outcome, TokenInfo
from .keys import token_info
from .sessions import SessionCodec
from .strategies import ContextStrategy, RequestState

#: Refusals that come after the token's key was found among the trusted ones.
_KEY_KNOWN = frozenset(
    {Reason.WRONG_LENGTH, Reason.CHALLENGE_MISMATCH, Reason.EXPIRED, Reason.BAD_SIGNATURE}
)
#: The names of the built-in signals, as settings and decorators spell them.
PRIVATE_TOKEN = "private-token"  # noqa: S105 - a signal's name, not a password
REDEMPTION_RECORD = "redemption-record"
SESSION = "session"
SIGNAL_NAMES = frozenset({PRIVATE_TOKEN, REDEMPTION_RECORD, SESSION})
VIA_SESSION = TokenInfo(
    issuer=None, token_type=None, token_key_id=None, via_session=True, signal=SESSION
)


class Accepted(NamedTuple):
    """A signal vouches for the request.

    Immutable, like every verdict (one instance may answer every request); a named tuple
    rather than a frozen dataclass because one is built per redemption, and a frozen
    dataclass's ``__init__`` (one ``object.__setattr__`` a field) costs about 1 µs more
    (BENCHMARKS.md). Build it by keyword; only ``token`` is required."""

    token: TokenInfo
    outcome: Outcome = Outcome.PASS
    #: What the replay store must record before the request passes (None: nothing). Holds
    #: the token's nonce or challenge digest: kept out of repr.
    spend: bytes | None = None
    ttl: float = 0.0
    #: Earns the verified-session cookie (``verified_duration``).
    earns_session: bool = False
    issuer: str | None = None  # for the report
    key_id: bytes | None = None
    #: ``Decision(outcome, token=token)`` built beforehand, answered as the pass when no
    #: cookie is added to it (a pass is immutable, so one serves every request).
    decision: Decision | None = None

    def __repr__(self) -> str:
        return (
            f"Accepted(token={self.token!r}, outcome={self.outcome!r}, ttl={self.ttl!r}, "
            f"earns_session={self.earns_session!r}, issuer={self.issuer!r}, "
            f"key_id={self.key_id!r})"
        )


@dataclass(frozen=True, slots=True)
class Refused:
    """A signal is present but refused; ``status`` None means ``failure_status``."""

    reason: Reason
    detail: str
    issuer: str | None = None
    key_id: bytes | None = None
    status: int | None = None


Verdict = Accepted | Refused | None
#: What a valid verified-session cookie gets: the same (immutable) verdict every time.
SESSION_ACCEPTED = Accepted(
    VIA_SESSION,
    outcome=Outcome.SESSION,
    decision=Decision(Outcome.SESSION, token=VIA_SESSION),
)


class RecordChecker(Protocol):
    """Verifies a ``Sec-Redemption-Record`` value: a
    :class:`~pat_middleware.core.redemption_record.RecordVerifier`, or the
    :class:`~pat_middleware.discovery.RecordKeySource` that keeps fetched keys current."""

    def verify(self, value: str | bytes | None, *, now: float) -> RedemptionRecord | None: ...


class TrustSignal(Protocol):
    """One kind of evidence a request may carry."""

    #: Its name in settings and routes (``private-token``, ``session``...).
    name: str

    def judge(self, state: RequestState) -> Verdict: ...


def _is_grease_or_empty(token: bytes) -> bool:
    """Empty, or of a grease type: read as "no token" (RFC 9577 §2.2)."""
    if len(token) < 2:
        return not token
    return ((token[0] << 8) | token[1]) in GREASE_TOKEN_TYPES


class PrivateTokenSignal:
    """``Authorization: PrivateToken``: verified in spec order against the keys in force and
    the challenges the strategy says this request may answer."""

    name = PRIVATE_TOKEN

    def __init__(self, settings: Settings, strategy: ContextStrategy, source: KeySource) -> None:
        self._max_length = settings.max_authorization_length
        self._types = settings.token_types
        self._strategy = strategy
        self._replay_ttl = strategy.replay_ttl  # fixed by the settings, read once
        self._source = source

    def judge(self, state: RequestState) -> Verdict:
        authorization = state.request.authorization
        if not authorization:
            return None
        try:
            tokens = parse_authorization(authorization, max_length=self._max_length)
        except DecodeError as e:
            return Refused(Reason.MALFORMED, str(e))
        # Grease tokens stand for "no token" (RFC 9577 §2.2); so do empty ones. (The one
        # token clients send is tested inline: this runs once per redemption.)
        if len(tokens) == 1:
            only = tokens[0]
            if len(only) < 2 or ((only[0] << 8) | only[1]) in GREASE_TOKEN_TYPES:
                tokens = [t for t in tokens if not _is_grease_or_empty(t)]
        elif tokens:
            tokens = [t for t in tokens if not _is_grease_or_empty(t)]
        if not tokens:
            return None
        # The first failure's reason, detail and token, not the exception: a kept exception
        # holds its traceback, whose frame holds the exception again, so every refused
        # request's token, cookies and state would wait for the cyclic garbage collector.
        first_error: tuple[Reason, str, bytes] | None = None
        keys = state.keys
        matcher = self._strategy.matcher(state)
        for raw in tokens:
            try:
                result = verify_token(
                    raw, keys=keys.keys, challenges=matcher, allowed_types=self._types
                )
            except TokenError as e:
                if e.reason is Reason.UNKNOWN_KEY:
                    self._source.key_missing(state.now)  # rate-limited, never waits
                first_error = first_error or (e.reason, e.detail, raw)
                continue
            key_id = result.key.token_key_id
            prebuilt = keys.passes.get((result.issuer_name, key_id))
            if prebuilt is None:  # a key added to the live ring after the snapshot
                proof = token_info(TrustedKey(result.issuer_name, result.key))
            else:
                proof = prebuilt.token  # type: ignore[assignment]  # set on every pass built
            return Accepted(
                proof,
                spend=self._strategy.replay_key(result),
                ttl=self._replay_ttl,
                earns_session=True,
                issuer=result.issuer_name,
                key_id=key_id,
                decision=prebuilt,
            )
        if first_error is None:  # pragma: no cover - tokens is not empty
            return None
        reason, detail, raw = first_error
        # Name the issuer and key in the report only when the token's key is a trusted one
        # (in the key snapshot this request was verified against).
        trusted = None
        if reason in _KEY_KNOWN:
            trusted = keys.keys.find(raw[TOKEN_KEY_ID_OFFSET:AUTHENTICATOR_INPUT_LENGTH])
        if trusted is None:
            return Refused(reason, detail)
        return Refused(reason, detail, trusted.issuer_name, trusted.key.token_key_id)


class VerifiedSessionSignal:
    """The verified-session cookie: a MAC over the session id, younger than
    ``verified_duration``, for the session cookie sent with it."""

    name = SESSION

    def __init__(self, settings: Settings, sessions: SessionCodec) -> None:
        self._duration = settings.verified_duration
        self._sessions = sessions

    def judge(self, state: RequestState) -> Verdict:
        value = state.cookies.get(state.names.verified)
        if value and self._sessions.is_verified(value, state.session, self._duration):
            return SESSION_ACCEPTED
        return None


class RedemptionRecordSignal:
    """``Sec-Redemption-Record`` (Private State Tokens): a record from a trusted issuer,
    verified against its published keys (signature, issuer, expiry, redeeming origin).

    A record is a bearer credential the browser re-sends while it lives, so nothing is
    spent: the same record passes again until it expires. Entries from issuers this site
    does not trust are skipped (no signal); a forged, expired, truncated or re-labelled
    record from a trusted one is refused with its reason.
    """

    name = REDEMPTION_RECORD

    def __init__(self, verifier: RecordChecker) -> None:
        self._verifier = verifier

    def judge(self, state: RequestState) -> Verdict:
        value = state.request.redemption_record
        if not value:
            return None
        try:
            record = self._verifier.verify(value, now=state.now)
        except TokenError as e:
            if e.reason is Reason.UNTRUSTED_ISSUER:
                return None
            return Refused(e.reason, e.detail)
        if record is None:
            return None
        info = TokenInfo(
            issuer=record.issuer,
            token_type=None,
            token_key_id=None,
            signal=REDEMPTION_RECORD,
            label=record.key_id,
        )
        # No verified-session cookie: the record is itself the lasting credential (the
        # browser sends it whenever the page asks), and a request without it gets nothing.
        return Accepted(info, issuer=record.issuer)


__all__ = [
    "PRIVATE_TOKEN",
    "REDEMPTION_RECORD",
    "SESSION",
    "SESSION_ACCEPTED",
    "SIGNAL_NAMES",
    "VIA_SESSION",
    "Accepted",
    "PrivateTokenSignal",
    "RecordChecker",
    "RedemptionRecordSignal",
    "Refused",
    "TrustSignal",
    "Verdict",
    "VerifiedSessionSignal",
]
