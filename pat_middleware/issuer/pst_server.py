"""The Private State Token issuer over HTTP: a Starlette app around :class:`PSTIssuer`.

Routes (paths as MDN names them; the page fetches whichever URL it likes, and the issuer
origin is that URL's origin):

* ``GET /.well-known/private-state-token/key-commitment``: the key commitment (pst-notes §2),
  what Chrome's registration fetches and ``--additional-private-state-token-key-commitments``
  takes.
* ``GET|POST /.well-known/private-state-token/issuance``: reads ``Sec-Private-State-Token``
  (and ``Sec-Private-State-Token-Crypto-Version``, which must be ``PrivateStateTokenV1VOPRF``
  when present) and answers the signed batch in ``Sec-Private-State-Token``.
* ``GET|POST /.well-known/private-state-token/redemption``: answers a redemption record in
  ``Sec-Private-State-Token`` and its lifetime in ``Sec-Private-State-Token-Lifetime``.
* ``GET /.well-known/private-state-token/redemption-record-keys``: the JWK Set origins verify
  records with (``application/jwk-set+json``).

**Establishing trust.** Issuance is where a real issuer decides whether this user deserves
tokens (a signed-in account, a passed challenge, a first-party cookie of the issuer's). That
decision is the ``decide`` hook: a callable (plain or ``async``) that receives the Starlette
:class:`Request` and returns ``True`` (issue, newest key), ``False`` (refuse: 403, no tokens)
or an :class:`IssuanceDecision` choosing the key id (the trust label) and a smaller batch.
The default issues to everyone, which is right only for tests and demos. To see the issuer's
cookies, the page must fetch with ``credentials: "include"``; this app answers CORS with the
caller's origin and ``Access-Control-Allow-Credentials: true`` for that reason.

**CORS.** Chromium stores tokens even when CORS fails, but the page's ``fetch()`` promise only
resolves with ``Access-Control-Allow-Origin``: every answer from the issuance and redemption
routes carries it (the request's ``Origin``, restricted to ``allow_origins`` when given), and
``OPTIONS`` preflights are answered. Chromium reads the ``Sec-Private-State-Token*`` response
headers itself, so nothing needs exposing to the page.

**Permissions-Policy.** Chrome's default allowlist for ``private-state-token-issuance`` and
``private-state-token-redemption`` is ``*``: a page needs nothing. A page that sends its own
``Permissions-Policy`` must keep them, e.g. ``private-state-token-issuance=(self),
private-state-token-redemption=(self)``, and list (or ``allow=`` on the ``<iframe>``) any
frame that calls issuance or redemption. ``send-redemption-record`` works from the top-level
document.

Malformed input gets a 4xx with a one-line plain-text reason, never a 5xx; a replay store that
cannot answer gets 503 with ``Retry-After``.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import TypeAlias

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from ..core.redemption_record import JWKS_MEDIA_TYPE, JWKS_PATH, normalize_origin
from ..errors import ConfigurationError, DecodeError, IssuanceError, Reason, TokenError
from ..stores import StoreUnavailable
from .pst import PSTIssuer
from .pst_wire import (
    CRYPTO_VERSION_HEADER,
    LIFETIME_HEADER,
    PROTOCOL_VERSION,
    PST_HEADER,
)

WELL_KNOWN = "/.well-known/private-state-token"
COMMITMENT_PATH = f"{WELL_KNOWN}/key-commitment"
ISSUANCE_PATH = f"{WELL_KNOWN}/issuance"
REDEMPTION_PATH = f"{WELL_KNOWN}/redemption"
#: ``Cache-Control: max-age`` of the commitment and the JWK Set unless told otherwise.
DEFAULT_MAX_AGE = 3600
_ALLOWED_METHODS = "GET, POST, OPTIONS"
_PREFLIGHT_MAX_AGE = "600"


@dataclass(frozen=True, slots=True)
class IssuanceDecision:
    """What the ``decide`` hook answers: issue or not, under which key, how many at most."""

    issue: bool = True
    key_id: int | None = None
    limit: int | None = None


IssuanceHook: TypeAlias = Callable[
    [Request], "IssuanceDecision | bool | Awaitable[IssuanceDecision | bool]"
]


def issue_to_everyone(request: Request) -> bool:
    """The default hook: every request gets tokens (tests and demos only)."""
    return True


async def _decide(hook: IssuanceHook, request: Request) -> IssuanceDecision:
    answer = hook(request)
    if inspect.isawaitable(answer):
        answer = await answer
    if isinstance(answer, IssuanceDecision):
        return answer
    if isinstance(answer, bool):
        return IssuanceDecision(issue=answer)
    raise TypeError("the issuance hook must return a bool or an IssuanceDecision")


#: Token refusals and the status each gets.
_STATUS = {Reason.MALFORMED: 400}


def create_pst_issuer_app(
    issuer: PSTIssuer,
    *,
    decide: IssuanceHook = issue_to_everyone,
    allow_origins: Collection[str] | None = None,
    max_age: int = DEFAULT_MAX_AGE,
) -> Starlette:
    """A Starlette app serving ``issuer`` (module docstring).

    ``allow_origins``: the page origins allowed to call issuance and redemption from another
    origin (CORS); ``None`` allows any. ``max_age``: caching of the commitment and JWK Set.
    """
    if max_age < 0:
        raise ConfigurationError("max_age", "must not be negative")
    if not callable(decide):  # else found at the first issuance, as a 500
        raise ConfigurationError("decide", "must be a function of the request")
    allowed: frozenset[str] | None = None
    if allow_origins is not None:
        try:
            allowed = frozenset(normalize_origin(o) for o in allow_origins)
        except DecodeError as e:
            raise ConfigurationError("allow_origins", str(e)) from None

    def cors(request: Request) -> dict[str, str]:
        origin = request.headers.get("origin")
        headers = {"Vary": "Origin", "Cache-Control": "no-store"}
        if origin is None:
            return headers
        try:
            normalized = normalize_origin(origin)
        except DecodeError:
            return headers
        if allowed is None or normalized in allowed:
            headers["Access-Control-Allow-Origin"] = origin
            headers["Access-Control-Allow-Credentials"] = "true"
        return headers

    def fail(request: Request, status: int, message: str, **extra: str) -> Response:
        return PlainTextResponse(message, status_code=status, headers={**cors(request), **extra})

    def preflight(request: Request) -> Response:
        headers = cors(request)
        if "Access-Control-Allow-Origin" in headers:
            headers["Access-Control-Allow-Methods"] = _ALLOWED_METHODS
            requested = request.headers.get("access-control-request-headers")
            if requested:
                headers["Access-Control-Allow-Headers"] = requested[:1024]
            headers["Access-Control-Max-Age"] = _PREFLIGHT_MAX_AGE
        return Response(status_code=204, headers=headers)

    def token_header(request: Request) -> str | Response:
        version = request.headers.get(CRYPTO_VERSION_HEADER.lower())
        if version is not None and version.strip() != PROTOCOL_VERSION:
            return fail(request, 400, f"{CRYPTO_VERSION_HEADER} must be {PROTOCOL_VERSION}")
        values = request.headers.getlist(PST_HEADER.lower())
        if len(values) != 1:
            return fail(request, 400, f"send exactly one {PST_HEADER} header")
        return values[0]

    async def commitment(request: Request) -> Response:
        return Response(
            issuer.commitment_body(),
            media_type="application/json",
            headers={"Cache-Control": f"max-age={max_age}"},
        )

    async def jwks(request: Request) -> Response:
        return Response(
            issuer.record_key_set_body(),
            media_type=JWKS_MEDIA_TYPE,
            headers={"Cache-Control": f"max-age={max_age}"},
        )

    async def issuance(request: Request) -> Response:
        if request.method == "OPTIONS":
            return preflight(request)
        value = token_header(request)
        if isinstance(value, Response):
            return value
        decision = await _decide(decide, request)
        if not decision.issue:
            return fail(request, 403, "the issuer does not issue tokens to this request")
        try:
            # Tens of milliseconds of group arithmetic: off the event loop.
            result = await run_in_threadpool(
                issuer.issue, value, key_id=decision.key_id, limit=decision.limit
            )
        except IssuanceError as e:
            return fail(request, e.status, str(e))
        return Response(
            f"issued {result.issued} tokens under key {result.key_id}\n",
            media_type="text/plain",
            headers={**cors(request), PST_HEADER: result.header},
        )

    async def redemption(request: Request) -> Response:
        if request.method == "OPTIONS":
            return preflight(request)
        value = token_header(request)
        if isinstance(value, Response):
            return value
        try:
            answer = await run_in_threadpool(issuer.redeem, value)
        except TokenError as e:
            return fail(request, _STATUS.get(e.reason, 403), str(e))
        except StoreUnavailable as e:
            return fail(
                request,
                503,
                "the replay store is unavailable",
                **{"Retry-After": str(e.retry_after)},
            )
        return Response(
            "redeemed\n",
            media_type="text/plain",
            headers={
                **cors(request),
                PST_HEADER: answer.record,
                LIFETIME_HEADER: str(answer.lifetime),
            },
        )

    routes = [
        Route(COMMITMENT_PATH, commitment, methods=["GET"]),
        Route(JWKS_PATH, jwks, methods=["GET"]),
        Route(ISSUANCE_PATH, issuance, methods=["GET", "POST", "OPTIONS"]),
        Route(REDEMPTION_PATH, redemption, methods=["GET", "POST", "OPTIONS"]),
    ]
    return Starlette(routes=routes)


__all__ = [
    "COMMITMENT_PATH",
    "DEFAULT_MAX_AGE",
    "ISSUANCE_PATH",
    "REDEMPTION_PATH",
    "IssuanceDecision",
    "IssuanceHook",
    "create_pst_issuer_app",
    "issue_to_everyone",
]
