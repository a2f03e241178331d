"""The answers the policy gives: pass, 401 challenge, refusal, unavailable. Each is built here
and reported once (one log record, one metrics event, see :mod:`.observe`).

A header to add to every 401 is added in one place: :meth:`Responses.challenge` and
:meth:`Responses.refuse` share :meth:`Responses._refusal`.
"""

from __future__ import annotations

from ..core.headers import WWW_AUTHENTICATE
from ..errors import Reason
from ..settings.model import Settings
from ..stores import StoreUnavailable
from .decision import Decision, Outcome, SetCookie
from .observe import Observer
from .sessions import SessionCodec
from .signals import Accepted, Refused
from .strategies import ContextStrategy, Cookies, RequestState

#: Retry-After of the 503 sent while no issuer has a key to challenge with.
NO_KEYS_RETRY_AFTER = 30
_PLAIN = ("Content-Type", "text/plain; charset=utf-8")
_NO_STORE = ("Cache-Control", "no-store")

SKIP = Decision(Outcome.SKIP)
#: A path that does not decode, when path rules are set: refused, not guessed at.
BAD_PATH = Decision(
    Outcome.REJECT,
    status=400,
    headers=(_PLAIN, _NO_STORE),
    body=b"Bad request path.\n",
    reason=Reason.MALFORMED,
)
NO_KEYS = Decision(
    Outcome.UNAVAILABLE,
    status=503,
    headers=(("Retry-After", str(NO_KEYS_RETRY_AFTER)), _PLAIN, _NO_STORE),
    body=b"No issuer key is available yet; please retry.\n",
)


class Responses:
    """Builds and reports every decision on a protected request."""

    __slots__ = (
        "_body",
        "_cookies",
        "_failure_status",
        "_refusal_headers",
        "_sessions",
        "_strategy",
        "_unavailable_status",
        "_verified_duration",
        "observer",
    )

    def __init__(
        self,
        settings: Settings,
        strategy: ContextStrategy,
        sessions: SessionCodec,
        cookies: Cookies,
        observer: Observer,
    ) -> None:
        self._strategy = strategy
        self._sessions = sessions
        self._cookies = cookies
        self.observer = observer
        self._body = settings.challenge_body.encode("utf-8")
        self._failure_status = settings.failure_status
        self._unavailable_status = settings.store_unavailable_status
        self._refusal_headers = (("Content-Type", settings.challenge_content_type), _NO_STORE)
        self._verified_duration = settings.verified_duration

    def passed(self, state: RequestState, accepted: Accepted) -> Decision:
        """The pass: with the verified-session cookie (and a session cookie when there is
        none) when the signal earns one."""
        cookies: tuple[SetCookie, ...] = ()
        duration = self._verified_duration
        if accepted.earns_session and duration > 0:
            made: list[SetCookie] = []
            session = state.session
            names = state.names
            if session is None:
                session = self._sessions.new_session()
                made.append(self._cookies.session(names, session))
            value = self._sessions.dump_verified(session)
            made.append(self._cookies.make(names, names.verified, value, duration))
            cookies = tuple(made)
        self.observer.report(
            accepted.outcome,
            200,
            started=state.started,
            issuer=accepted.issuer,
            key_id=accepted.key_id,
        )
        if not cookies:
            prebuilt = accepted.decision  # the same pass, built once
            if (
                prebuilt is not None
                and prebuilt.token is accepted.token
                and prebuilt.outcome is accepted.outcome
                and not prebuilt.cookies
            ):
                return prebuilt
        return Decision(accepted.outcome, cookies=cookies, token=accepted.token)

    def challenge(self, state: RequestState) -> Decision:
        """401 with one PrivateToken challenge per issuer."""
        header = self._strategy.challenge_header(state)
        self.observer.report(Outcome.CHALLENGE, 401, started=state.started)
        return self._refusal(state, Outcome.CHALLENGE, 401, header, None)

    def refuse(self, state: RequestState, refused: Refused) -> Decision:
        """A refused signal: ``failure_status`` (401 with a fresh challenge by default)."""
        status = refused.status or self._failure_status
        header = self._strategy.challenge_header(state) if status == 401 else None
        self.observer.report(
            Outcome.REJECT,
            status,
            started=state.started,
            reason=refused.reason,
            detail=refused.detail,
            issuer=refused.issuer,
            key_id=refused.key_id,
        )
        return self._refusal(state, Outcome.REJECT, status, header, refused.reason)

    def _refusal(
        self,
        state: RequestState,
        outcome: Outcome,
        status: int,
        challenge: str | None,
        reason: Reason | None,
    ) -> Decision:
        headers: tuple[tuple[str, str], ...] = self._refusal_headers
        if challenge:  # empty with no Private Access Token issuer (PST records only)
            headers = ((WWW_AUTHENTICATE, challenge), *headers)
        return Decision(
            outcome,
            status=status,
            headers=headers,
            cookies=tuple(state.set_cookies),
            body=self._body,
            reason=reason,
        )

    def unavailable(self, state: RequestState | None, error: StoreUnavailable) -> Decision:
        """The replay store could not answer (or must not be used here): fail closed."""
        status = self._unavailable_status
        self.observer.report(
            Outcome.UNAVAILABLE,
            status,
            started=state.started if state is not None else 0.0,
            detail=str(error),
        )
        return Decision(
            Outcome.UNAVAILABLE,
            status=status,
            headers=(("Retry-After", str(error.retry_after)), _PLAIN, _NO_STORE),
            body=b"Service temporarily unavailable; please retry.\n",
        )

    def no_keys(self, state: RequestState) -> Decision:
        """No issuer has a key to challenge with (yet): fail closed."""
        self.observer.report(
            Outcome.UNAVAILABLE,
            NO_KEYS.status,
            started=state.started,
            detail="no issuer key available yet",
        )
        return NO_KEYS

    def bad_path(self) -> Decision:
        self.observer.report(
            Outcome.REJECT, 400, reason=Reason.MALFORMED, detail="request path does not decode"
        )
        return BAD_PATH


__all__ = ["BAD_PATH", "NO_KEYS", "NO_KEYS_RETRY_AFTER", "SKIP", "Responses"]
