"""Starlette authentication: ``request.auth`` / ``request.user`` from a trust signal.

::

    middleware = [
        Middleware(PrivateTokenMiddleware, settings_file="pat.toml"),
        Middleware(AuthenticationMiddleware, backend=PrivateTokenBackend(), on_error=on_error),
    ]

    @requires("private_token")          # this module's requires: 401 with the challenge
    async def comment(request): ...

:class:`PrivateTokenBackend` judges a request that carries a signal (a ``PrivateToken``
credential, the verified-session cookie, a redemption record): a pass gives the scopes
``private_token`` and ``private_token:<signal>`` (``private_token:private-token``,
``private_token:session``, ``private_token:redemption-record``) and a
:class:`PrivateTokenUser` holding the :class:`~pat_middleware.policy.TokenInfo`; a refused
token raises :class:`PrivateTokenAuthError`, which :func:`on_error` answers with the
policy's refusal (401 with a fresh challenge). Requests without any signal are left
unauthenticated and cost nothing.

Starlette's own ``requires`` answers a missing scope with ``403`` and no
``WWW-Authenticate``, which no client can answer with a token. :func:`requires` here takes
the same arguments and answers a missing ``private_token`` scope with the policy's
challenge instead; other missing scopes get Starlette's answer. Starlette's ``requires``
still works for pages where a 403 is wanted.

The visitor is not identified: ``request.user.is_authenticated`` is False (a token proves
a trusted issuer vouched for the client, not who it is). Install
:class:`~pat_middleware.integrations.asgi.PrivateTokenMiddleware` outside the
authentication middleware: it gives the backend its policy and writes a pass's cookies
and ``Cache-Control: private`` on the response.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any, ParamSpec

from starlette.authentication import (
    AuthCredentials,
    AuthenticationBackend,
    AuthenticationError,
    BaseUser,
    has_required_scope,
)
from starlette.authentication import requires as starlette_requires
from starlette.requests import HTTPConnection, Request
from starlette.responses import PlainTextResponse, Response

from ..errors import ConfigurationError, PrivateTokenError
from ..policy import SCOPE_KEY, Decision, Outcome, Policy, TokenInfo
from ._common import PREFLIGHT_STATUS, accept_names, carries_signal
from .asgi import POLICY_SCOPE_KEY, defer_decision, preflight, request_info
from .starlette import apply_decision, policy_for, refusal_response

#: The scope every pass gives; ``private_token:<signal name>`` names the signal as well.
PRIVATE_TOKEN_SCOPE = "private_token"  # noqa: S105 - a scope name, not a password
_SIGNAL_SCOPE = PRIVATE_TOKEN_SCOPE + ":"
#: ``private-token``, the signal's name, where the scope ``private_token`` was meant.
_MISSPELT_SCOPE = "private-token"
#: Scope key of a decision the backend took that the response still has to carry.
DECISION_SCOPE_KEY = "pat_middleware.decision"

_P = ParamSpec("_P")


def scopes_for(token: TokenInfo) -> list[str]:
    """``private_token`` and ``private_token:<signal>`` for a pass."""
    return [PRIVATE_TOKEN_SCOPE, _SIGNAL_SCOPE + token.signal]


class PrivateTokenUser(BaseUser):
    """The visitor of a passed request: not identified, vouched for by a trust signal."""

    def __init__(self, token: TokenInfo) -> None:
        self.token = token

    def __repr__(self) -> str:
        return f"PrivateTokenUser({self.token!r})"

    @property
    def is_authenticated(self) -> bool:
        return False  # nobody is logged in: see the module's documentation

    @property
    def display_name(self) -> str:
        return ""

    @property
    def identity(self) -> str:
        return ""


class PrivateTokenAuthError(AuthenticationError, PrivateTokenError):
    """A trust signal was present and refused; :func:`on_error` answers ``decision``."""

    def __init__(self, decision: Decision) -> None:
        self.decision = decision
        reason = decision.reason.value if decision.reason else decision.outcome.value
        super().__init__(reason)


class PrivateTokenBackend(AuthenticationBackend):
    """Authenticate requests by the policy's trust signals (``accept``: their names; None:
    all). ``policy``: default, the one :class:`PrivateTokenMiddleware` put in the scope."""

    def __init__(
        self, policy: Policy | None = None, *, accept: Iterable[str] | None = None
    ) -> None:
        self.policy = policy
        self.accept = accept_names(accept, policy)

    def __repr__(self) -> str:
        return f"PrivateTokenBackend(accept={sorted(self.accept) if self.accept else None})"

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, BaseUser] | None:
        scope = conn.scope
        if self.policy is not None:  # so that requires() finds it without the middleware
            scope.setdefault(POLICY_SCOPE_KEY, self.policy)
        token = scope.get(SCOPE_KEY)
        if isinstance(token, TokenInfo):  # the middleware passed it (a protected path)
            if self.accept is None or token.signal in self.accept:
                return AuthCredentials(scopes_for(token)), PrivateTokenUser(token)
            return None
        if scope["type"] != "http" or preflight(scope):
            return None
        policy = policy_for(conn, self.policy, "PrivateTokenBackend")
        info = request_info(scope)
        if not carries_signal(info, policy):
            return None
        decision = await policy.evaluate_async(info, force=True, accept=self.accept)
        if decision.allowed and decision.token is not None:
            scope[SCOPE_KEY] = decision.token
            if not defer_decision(scope, decision):
                scope[DECISION_SCOPE_KEY] = decision  # requires() writes it
            return AuthCredentials(scopes_for(decision.token)), PrivateTokenUser(decision.token)
        if decision.outcome is Outcome.CHALLENGE:  # nothing usable: the route decides
            scope[DECISION_SCOPE_KEY] = decision
            return None
        raise PrivateTokenAuthError(decision)


def on_error(conn: HTTPConnection, exc: AuthenticationError) -> Response:
    """``AuthenticationMiddleware(on_error=...)``: the policy's refusal (401 with a fresh
    challenge, or its 4xx/503) for a refused signal; Starlette's 400 for anything else."""
    if isinstance(exc, PrivateTokenAuthError):
        return refusal_response(exc.decision, conn.scope.get("method", "GET"))
    return PlainTextResponse(str(exc), status_code=400)


def _accept_of(missing: Sequence[str]) -> frozenset[str] | None:
    """The signals that would satisfy the missing ``private_token`` scopes."""
    named = {s.removeprefix(_SIGNAL_SCOPE) for s in missing if s.startswith(_SIGNAL_SCOPE)}
    return frozenset(named) if named else None


async def _answer(
    request: Request, missing: Sequence[str], policy: Policy | None, accept: Collection[str] | None
) -> Decision:
    """The decision for a request missing ``private_token`` scopes: the backend's challenge,
    or the policy asked now (the backend may not be installed, or not judge this request)."""
    kept = request.scope.pop(DECISION_SCOPE_KEY, None)
    if isinstance(kept, Decision) and not kept.allowed:
        return kept
    names = _accept_of(missing) or accept
    active = policy_for(request, policy, "requires")
    decision = await active.evaluate_async(request_info(request.scope), force=True, accept=names)
    if decision.allowed and decision.token is not None:
        request.scope[SCOPE_KEY] = decision.token
        request.scope["auth"] = AuthCredentials(scopes_for(decision.token))
        request.scope["user"] = PrivateTokenUser(decision.token)
    return decision


def requires(
    scopes: str | Sequence[str] = PRIVATE_TOKEN_SCOPE,
    status_code: int = 403,
    redirect: str | None = None,
    *,
    policy: Policy | None = None,
    accept: Iterable[str] | None = None,
) -> Callable[[Callable[_P, Any]], Callable[_P, Any]]:
    """Starlette's ``requires``, answering a missing ``private_token`` scope with the
    policy's challenge (401, ``WWW-Authenticate: PrivateToken ...``, the session cookie)
    rather than 403. ``accept`` limits the signals (``private_token:<signal>`` scopes do
    too). A CORS preflight gets ``204`` without running the endpoint. WebSocket endpoints
    get Starlette's ``requires`` (a browser cannot answer a challenge there)."""
    wanted = [scopes] if isinstance(scopes, str) else list(scopes)
    names = accept_names(accept, policy)
    for scope in wanted:
        if scope.startswith(_SIGNAL_SCOPE):
            accept_names([scope.removeprefix(_SIGNAL_SCOPE)], policy)  # a typo fails here
        elif scope.startswith(_MISSPELT_SCOPE):  # the signal's spelling, not the scope's
            raise ConfigurationError(
                "scopes",
                f"{scope!r} is no scope a pass gives, so no request would have it; "
                f"the scope is {PRIVATE_TOKEN_SCOPE!r} "
                f"(or {_SIGNAL_SCOPE}<signal>, e.g. {_SIGNAL_SCOPE}private-token)",
            )
    ours = [s for s in wanted if s == PRIVATE_TOKEN_SCOPE or s.startswith(_SIGNAL_SCOPE)]
    if names is not None and not ours:
        ours = [PRIVATE_TOKEN_SCOPE]
        wanted.append(PRIVATE_TOKEN_SCOPE)

    def allowed(request: Request) -> bool:
        if "auth" not in request.scope or not has_required_scope(request, ours):
            return False  # (without AuthenticationMiddleware, the policy is asked below)
        user = request.scope.get("user")
        return names is None or (isinstance(user, PrivateTokenUser) and user.token.signal in names)

    def decorator(func: Callable[_P, Any]) -> Callable[_P, Any]:
        index = _request_index(func)
        if index is None:  # a websocket endpoint
            return starlette_requires(wanted, status_code, redirect)(func)
        others = starlette_requires([s for s in wanted if s not in ours], status_code, redirect)
        inner = others(func)

        async def check(request: Request) -> Response | Decision | None:
            """A response to send, a pass to write on the endpoint's response, or None."""
            if preflight(request.scope):
                return Response(status_code=PREFLIGHT_STATUS)
            if allowed(request):
                kept = request.scope.pop(DECISION_SCOPE_KEY, None)
                return kept if isinstance(kept, Decision) and kept.allowed else None
            held = request.auth.scopes if "auth" in request.scope else ()
            missing = [s for s in ours if s not in held] or ours
            decision = await _answer(request, missing, policy, names)
            if not decision.allowed:
                return refusal_response(decision, request.method)
            return None if defer_decision(request.scope, decision) else decision

        def request_of(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Request:
            request = kwargs.get("request", args[index] if index < len(args) else None)
            if not isinstance(request, Request):
                raise TypeError(f"{func.__qualname__}: the 'request' argument is not a Request")
            return request

        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: _P.args, **kwargs: _P.kwargs) -> Any:
                verdict = await check(request_of(args, kwargs))
                if isinstance(verdict, Response):
                    return verdict
                response = await inner(*args, **kwargs)
                if isinstance(verdict, Decision) and isinstance(response, Response):
                    apply_decision(response, verdict)
                return response

            return async_wrapper

        @functools.wraps(func)
        def sync_wrapper(*args: _P.args, **kwargs: _P.kwargs) -> Any:
            # Starlette runs a sync endpoint in a thread: the check runs there, synchronously.
            verdict = _run_sync(check(request_of(args, kwargs)))
            if isinstance(verdict, Response):
                return verdict
            response = inner(*args, **kwargs)
            if isinstance(verdict, Decision) and isinstance(response, Response):
                apply_decision(response, verdict)
            return response

        return sync_wrapper

    return decorator


def _run_sync(coroutine: Any) -> Any:
    """Run the check of a sync endpoint (in Starlette's thread pool) to completion."""
    import anyio.from_thread

    async def run() -> Any:
        return await coroutine

    return anyio.from_thread.run(run)


def _request_index(func: Callable[..., Any]) -> int | None:
    """Where ``request`` is among ``func``'s parameters (None for ``websocket``), as
    Starlette's ``requires`` finds it."""
    for index, parameter in enumerate(inspect.signature(func).parameters.values()):
        if parameter.name == "request":
            return index
        if parameter.name == "websocket":
            return None
    raise TypeError(f'No "request" or "websocket" argument on function "{func}"')


__all__ = [
    "DECISION_SCOPE_KEY",
    "PRIVATE_TOKEN_SCOPE",
    "PrivateTokenAuthError",
    "PrivateTokenBackend",
    "PrivateTokenUser",
    "on_error",
    "requires",
    "scopes_for",
]
