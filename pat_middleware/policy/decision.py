"""What goes into the policy and what comes out: :class:`RequestInfo` in, :class:`Decision` out.

A decision is a verdict (:class:`Outcome`, status, :class:`~pat_middleware.errors.Reason`),
what the request proved (:class:`TokenInfo`), the response headers and body of a refusal,
and the cookies to set as :class:`SetCookie` values, which each integration writes with its
framework's own cookie API (or :meth:`Decision.header_lines` for raw ASGI and WSGI).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from ..errors import Reason

#: Scope / environ key where adapters put the :class:`TokenInfo` of a passed request.
SCOPE_KEY = "private_token"


class Outcome(enum.StrEnum):
    """What a request got. One vocabulary for decisions, log records and metrics events."""

    SKIP = "skip"  # not protected
    PASS = "pass"  # noqa: S105 - a valid token (or another trust signal), not a password
    SESSION = "session"  # no token, passed on a verified session
    CHALLENGE = "challenge"  # no token: 401 with challenges
    REJECT = "reject"  # a token (or the Host, or the path) was refused; ``reason`` says why
    UNAVAILABLE = "unavailable"  # the replay store could not answer, or no issuer key yet


#: The outcomes that let the request through to the application.
ALLOWED = frozenset({Outcome.SKIP, Outcome.PASS, Outcome.SESSION})


@dataclass(frozen=True, slots=True)
class RequestInfo:
    """What the policy needs from an HTTP request; adapters fill it in."""

    method: str
    path: str
    host: str | None = None
    #: ``http`` or ``https`` as the server saw it (None: unknown). Cookies on a loopback
    #: host over plain http drop ``Secure`` (see :class:`~.strategies.Cookies`).
    scheme: str | None = None
    #: Other spellings of the path the server or framework may act on (raw target, routed
    #: path, with or without the mount prefix); see :mod:`pat_middleware.core.paths`.
    paths: tuple[str, ...] = ()
    authorization: str | None = field(default=None, repr=False)  # carries a token
    cookie: str | None = field(default=None, repr=False)  # carries signed session marks
    #: ``Sec-Redemption-Record`` (Private State Tokens): records from trusted issuers.
    redemption_record: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """What a passed request proved, for the app to read (scope/environ ``private_token``)."""

    issuer: str | None  # None when the request passed on a verified session
    token_type: int | None
    token_key_id: str | None  # hex
    via_session: bool = False  # passed on a verified session rather than a fresh token
    #: The trust signal that let the request through: ``private-token``, ``session`` or
    #: ``redemption-record`` (then ``issuer`` is the PST issuer origin and ``label`` the
    #: issuer's key id, its trust label).
    signal: str = "private-token"
    label: int | None = None


@dataclass(frozen=True, slots=True)
class SetCookie:
    """One cookie to set, with its attributes: always HttpOnly."""

    name: str
    value: str = field(repr=False)
    max_age: int
    path: str = "/"
    domain: str | None = None
    secure: bool = True
    same_site: str = "Lax"

    def render(self) -> str:
        """The ``Set-Cookie`` header value."""
        text = (
            f"{self.name}={self.value}; Path={self.path}; Max-Age={self.max_age}; HttpOnly; "
            f"SameSite={self.same_site}"
        )
        if self.secure:
            text += "; Secure"
        if self.domain:
            text += f"; Domain={self.domain}"
        return text


@dataclass(frozen=True, slots=True)
class Decision:
    """The policy's answer.

    On a pass, ``cookies`` are to be set on the app's response, which must also be kept out
    of shared caches (:attr:`private`). Otherwise ``status``, ``headers``, ``cookies`` and
    ``body`` are the whole answer.
    """

    outcome: Outcome
    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()  # response headers other than Set-Cookie
    cookies: tuple[SetCookie, ...] = field(default=(), repr=False)
    body: bytes = field(default=b"", repr=False)
    reason: Reason | None = None
    token: TokenInfo | None = None

    @property
    def allowed(self) -> bool:
        """The request goes on to the application."""
        return self.outcome in ALLOWED

    @property
    def private(self) -> bool:
        """The app's response must carry ``Cache-Control: private`` (it passed on a trust
        signal: a shared cache must not hand it to anyone else)."""
        return self.outcome is Outcome.PASS or self.outcome is Outcome.SESSION

    def header_lines(self) -> list[tuple[str, str]]:
        """``headers`` and one ``Set-Cookie`` per cookie: for servers without a cookie API."""
        if not self.cookies:
            return list(self.headers)
        return [*self.headers, *(("Set-Cookie", c.render()) for c in self.cookies)]


__all__ = [
    "ALLOWED",
    "SCOPE_KEY",
    "Decision",
    "Outcome",
    "RequestInfo",
    "SetCookie",
    "TokenInfo",
]
