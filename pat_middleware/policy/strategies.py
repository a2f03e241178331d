"""One strategy per redemption-context mode (RFC 9577 §2.1.1.2; the ``redemption_context``
setting): what a challenge carries, which challenges a token may answer, and what the replay
store records.

* ``per-session`` (default): the context is derived from the session cookie and a time
  window (:class:`~pat_middleware.policy.contexts.Windows`); a token answers one of the
  session's live windows; its nonce is spent for as long as the window lives.
* ``per-request``: each 401 gets a fresh context, remembered in a signed cookie of pending
  challenges; the challenge's digest is spent (one token per challenge).
* ``none``: the empty context, the same challenge for everyone; nonces are spent for
  ``replay_ttl``.

The per-request working state (:class:`RequestState`) lives here too: strategies and trust
signals read it, and strategies add the cookies a challenge needs to it.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Protocol

from ..core.verify import VerifiedToken
from ..core.wire import TokenChallenge
from ..errors import Reason, TokenError
from ..settings.model import ContextMode, Settings
from .contexts import ContextDeriver, Windows
from .decision import RequestInfo, SetCookie
from .keys import KeySnapshot, render_challenges
from .sessions import MAX_PENDING_CHALLENGES, Session, SessionCodec

#: Extra seconds the replay store keeps a nonce past the last moment it could verify.
REPLAY_TTL_SLACK = 5
#: Per-request mode: random low bits of a challenge's time slot.
_SLOT_RANDOM_BITS = 16

#: Given a token's challenge_digest, the accepted challenge with that digest, or None.
Matcher = Callable[[bytes], "TokenChallenge | None"]


class RequestState:
    """Per-request working state, shared by the strategy, the trust signals and the answer."""

    __slots__ = (
        "cookies",
        "keys",
        "names",
        "now",
        "request",
        "session",
        "set_cookies",
        "started",
    )

    def __init__(
        self,
        request: RequestInfo,
        now: float,
        session: Session | None,
        keys: KeySnapshot,
        cookies: Mapping[str, str],
        started: float,
        names: CookieNames,
    ) -> None:
        self.names = names  # the cookies' names for this request (see Cookies.names_for)
        self.request = request
        self.now = now
        self.session = session
        self.keys = keys
        self.cookies = cookies
        self.set_cookies: list[SetCookie] = []
        self.started = started  # time.perf_counter() at the start, when a metrics hook is set


class ContextStrategy(Protocol):
    """What differs between the redemption-context modes."""

    @property
    def replay_ttl(self) -> float:
        """How long the replay store keeps what :meth:`replay_key` names."""
        ...

    #: The key contexts are derived under (None for ``none`` mode).
    contexts: ContextDeriver | None

    def challenge_header(self, state: RequestState) -> str:
        """The ``WWW-Authenticate`` value of a 401 (adding any cookie it needs to state)."""
        ...

    def matcher(self, state: RequestState) -> Matcher:
        """The challenges this request's session may answer, looked up by digest."""
        ...

    def replay_key(self, token: VerifiedToken) -> bytes:
        """What the replay store records for an accepted token."""
        ...


@dataclass(frozen=True, slots=True)
class CookieNames:
    """The cookies' names as they travel, and whether they are Secure."""

    session: str
    verified: str
    pending: str
    secure: bool


_LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]", "::1"})


def is_loopback_host(host: str | None) -> bool:
    """A Host header naming this machine: ``localhost``, ``127.0.0.1`` or ``[::1]``, any port."""
    if not host:
        return False
    host = host.strip().lower()
    if host.startswith("["):
        name = host.partition("]")[0] + "]"
    else:
        name = host.rpartition(":")[0] if host.count(":") == 1 else host
    return name in _LOOPBACK_HOSTS or name.endswith(".localhost")


class Cookies:
    """Makes the :class:`SetCookie` values of the session, verified and pending cookies.

    With ``cookie_secure`` (the default) they are Secure and named with the ``__Host-``
    prefix, except for a request over plain http to a loopback host (``localhost``,
    ``127.0.0.1``, ``[::1]``), or any plain-http request in ``development`` mode: there a
    Secure cookie would never come back from most clients, so the quickstart would fail
    with ``challenge_mismatch``. Such requests get (and read) plain cookies.
    """

    __slots__ = ("_development", "_opts", "_sessions", "plain", "secure", "session_lifetime")

    def __init__(self, settings: Settings, sessions: SessionCodec) -> None:
        opts = self._opts = settings.cookies
        self._sessions = sessions
        self._development = settings.development
        self.session_lifetime = settings.session_lifetime
        self.secure = CookieNames(
            opts.session_cookie, opts.verified_cookie, opts.pending_cookie, opts.secure
        )
        self.plain = CookieNames(
            opts.session_name, opts.verified_name, opts.session_name + "_c", False
        )

    def names_for(self, request: RequestInfo) -> CookieNames:
        """The names (and Secure flag) for this request's cookies."""
        if (
            self.secure.secure
            and request.scheme == "http"
            and (self._development or is_loopback_host(request.host))
        ):
            return self.plain
        return self.secure

    def make(self, names: CookieNames, name: str, value: str, max_age: int) -> SetCookie:
        opts = self._opts
        same_site = opts.samesite if names.secure or opts.samesite != "None" else "Lax"
        return SetCookie(name, value, max_age, opts.path, opts.domain, names.secure, same_site)

    def session(self, names: CookieNames, session: Session) -> SetCookie:
        value = self._sessions.dump_session(session)
        return self.make(names, names.session, value, self.session_lifetime)


class NoContext:
    """``none``: one empty-context challenge per issuer, for every client."""

    contexts: ContextDeriver | None = None

    def __init__(self, settings: Settings) -> None:
        self._replay_ttl = float(settings.replay_ttl)

    @property
    def replay_ttl(self) -> float:
        return self._replay_ttl

    def challenge_header(self, state: RequestState) -> str:
        return state.keys.static_header

    def matcher(self, state: RequestState) -> Matcher:
        return state.keys.static_match

    def replay_key(self, token: VerifiedToken) -> bytes:
        return b"n" + token.nonce


class _SessionBound:
    """What ``per-session`` and ``per-request`` share: contexts bound to the session cookie."""

    def __init__(
        self,
        settings: Settings,
        sessions: SessionCodec,
        cookies: Cookies,
        contexts: ContextDeriver,
        windows: Windows,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.cookies = cookies
        self.contexts: ContextDeriver | None = contexts
        self.windows = windows

    def _derive(self) -> ContextDeriver:
        contexts = self.contexts
        if contexts is None:  # pragma: no cover - set for session-bound modes
            raise RuntimeError("no context key")
        return contexts

    def _challenge_session(self, state: RequestState) -> tuple[Session, bool]:
        """The session a challenge is bound to: a new one (its cookie added to the answer)
        when there is none or it would expire before the challenge."""
        session = state.session
        if (
            session is not None
            and session.issued_at + self.settings.session_lifetime - state.now
            >= self.windows.longest_validity
        ):
            return session, False
        session = self.sessions.new_session()
        state.session = session
        state.set_cookies.append(self.cookies.session(state.names, session))
        return session, True


class PerSession(_SessionBound):
    """``per-session``: contexts from (session id, time window), rebuilt at redemption."""

    @property
    def replay_ttl(self) -> float:
        return float(self.windows.longest_validity + REPLAY_TTL_SLACK)

    def challenge_header(self, state: RequestState) -> str:
        session, _ = self._challenge_session(state)
        window = self.windows.index(state.now)
        context = self._derive().context(session.session_id, window)
        max_age = self.windows.remaining(window, state.now)
        return render_challenges(state.keys.pieces, context, max_age)

    def matcher(self, state: RequestState) -> Matcher:
        def match(digest: bytes) -> TokenChallenge | None:
            return self._match(state, digest)

        return match

    def _match(self, state: RequestState, digest: bytes) -> TokenChallenge | None:
        """The live window's challenge with this digest, newest window first; ``expired``
        for one of the windows just before them (ranges, not generators: this runs on every
        redemption)."""
        session = state.session
        if session is None:
            return None
        sid = session.session_id
        pieces = state.keys.pieces
        derive = self._derive().context
        for window in self.windows.live(state.now):
            context = derive(sid, window)
            for piece in pieces:
                challenge = piece[0].match(context, digest)
                if challenge is not None:
                    return challenge
        for window in self.windows.expired(state.now):  # only on the failure path
            context = derive(sid, window)
            for piece in pieces:
                if piece[0].match(context, digest) is not None:
                    raise TokenError(Reason.EXPIRED, "challenge is older than max-age")
        return None

    def replay_key(self, token: VerifiedToken) -> bytes:
        return b"n" + token.nonce


class PerRequest(_SessionBound):
    """``per-request``: a fresh context per 401, remembered in the pending-challenges cookie."""

    @property
    def replay_ttl(self) -> float:
        return float(self.settings.max_age + REPLAY_TTL_SLACK)

    def challenge_header(self, state: RequestState) -> str:
        session, fresh = self._challenge_session(state)
        # Issue time (ms) above 16 random bits: two 401s in one millisecond still differ.
        slot = (int(state.now * 1000) << _SLOT_RANDOM_BITS) | secrets.randbits(_SLOT_RANDOM_BITS)
        context = self._derive().context(session.session_id, slot)
        previous = [] if fresh else self._pending(state, session)
        kept = [s for s in previous if s != slot][-(MAX_PENDING_CHALLENGES - 1) :]
        value = self.sessions.dump_pending(session, [*kept, slot])
        names = state.names
        max_age = self.settings.max_age + REPLAY_TTL_SLACK
        state.set_cookies.append(self.cookies.make(names, names.pending, value, max_age))
        return render_challenges(state.keys.pieces, context, self.settings.max_age)

    def _pending(self, state: RequestState, session: Session) -> list[int]:
        return self.sessions.load_pending(
            state.cookies.get(state.names.pending), session, self.settings.session_lifetime
        )

    def _candidates(self, state: RequestState) -> Iterator[tuple[bytes, bool]]:
        """(context, expired) per challenge the session was sent."""
        session = state.session
        if session is None:
            return
        sid = session.session_id
        derive = self._derive().context
        now_ms = state.now * 1000
        max_age_ms = self.settings.max_age * 1000
        for slot in self._pending(state, session):
            issued_ms = slot >> _SLOT_RANDOM_BITS
            yield derive(sid, slot), now_ms - issued_ms > max_age_ms

    def matcher(self, state: RequestState) -> Matcher:
        def match(digest: bytes) -> TokenChallenge | None:
            for context, expired in self._candidates(state):
                for template, _ in state.keys.templates:
                    challenge = template.match(context, digest)
                    if challenge is None:
                        continue
                    if expired:
                        raise TokenError(Reason.EXPIRED, "challenge is older than max-age")
                    return challenge
            return None

        return match

    def replay_key(self, token: VerifiedToken) -> bytes:
        return b"c" + token.challenge_digest


def strategy_for(
    settings: Settings,
    sessions: SessionCodec,
    cookies: Cookies,
    contexts: ContextDeriver,
    windows: Windows,
) -> ContextStrategy:
    """The strategy of ``settings.redemption_context``."""
    mode = settings.redemption_context
    if mode is ContextMode.PER_SESSION:
        return PerSession(settings, sessions, cookies, contexts, windows)
    if mode is ContextMode.PER_REQUEST:
        return PerRequest(settings, sessions, cookies, contexts, windows)
    return NoContext(settings)


__all__ = [
    "REPLAY_TTL_SLACK",
    "ContextStrategy",
    "CookieNames",
    "Cookies",
    "Matcher",
    "NoContext",
    "PerRequest",
    "PerSession",
    "RequestState",
    "is_loopback_host",
    "strategy_for",
]
