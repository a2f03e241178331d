"""Starlette / FastAPI conveniences: an endpoint decorator, a dependency, their refusal.

Both need the policy: pass it explicitly, or install :class:`PrivateTokenMiddleware`, which
puts it in the scope. Importing this module imports Starlette (not FastAPI: its security
scheme is :class:`pat_middleware.integrations.fastapi.PrivateTokenSecurity`; Starlette's
authentication backend is in :mod:`pat_middleware.integrations.starlette_auth`).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Collection, Iterable
from http import HTTPStatus
from typing import Any, TypeVar, overload

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response

from ..core.headers import CACHE_CONTROL, private_cache_control
from ..errors import ConfigurationError, PrivateTokenError
from ..policy import SCOPE_KEY, Decision, Policy, SetCookie, TokenInfo
from . import _common
from ._common import PREFLIGHT_STATUS, MethodFilter, accept_names, accepts, passed
from .asgi import POLICY_SCOPE_KEY, defer_decision, encode_headers, preflight, request_info

Endpoint = TypeVar("Endpoint", bound=Callable[..., Awaitable[Response]])
_CONTENT_TYPE = "content-type"


def policy_for(conn: HTTPConnection, policy: Policy | None, what: str = "this") -> Policy:
    """``policy``, else the one :class:`PrivateTokenMiddleware` put in the scope."""
    found = policy or conn.scope.get(POLICY_SCOPE_KEY)
    if not isinstance(found, Policy):
        raise ConfigurationError(
            "policy", f"{what} needs a policy: pass policy= or install PrivateTokenMiddleware"
        )
    return found


def set_cookies(response: Response, cookies: tuple[SetCookie, ...]) -> None:
    """The policy's cookies, through Starlette's own cookie API."""
    _common.set_cookies(response.set_cookie, cookies, lower_same_site=True)


def apply_decision(response: Response, decision: Decision) -> None:
    """A pass's cookies on the endpoint's response, and its Cache-Control made private."""
    set_cookies(response, decision.cookies)
    if decision.private:
        existing = response.headers.getlist(CACHE_CONTROL)
        response.headers[CACHE_CONTROL] = private_cache_control(
            ", ".join(existing) if existing else None
        )


def refusal_response(decision: Decision, method: str = "GET") -> Response:
    """The policy's 401/4xx/503 answer as a Starlette response (no body for HEAD)."""
    response = Response(b"" if method == "HEAD" else decision.body, status_code=decision.status)
    if method == "HEAD":
        response.headers["content-length"] = str(len(decision.body))
    response.raw_headers.extend(encode_headers(decision.headers))
    set_cookies(response, decision.cookies)
    return response


async def check_request(
    request: HTTPConnection, policy: Policy | None = None, accept: Collection[str] | None = None
) -> Decision:
    """Run the policy on ``request`` as a protected request; sets ``scope['private_token']``.

    A request an outer layer already passed is not judged again, if it passed with a signal
    in ``accept`` (names of trust signals; None: any)."""
    active = policy_for(request, policy, "require_private_token")
    token = request.scope.get(SCOPE_KEY)
    if accepts(token if isinstance(token, TokenInfo) else None, accept):
        done = passed(token)
        if done is not None:
            return done
    decision = await active.evaluate_async(request_info(request.scope), force=True, accept=accept)
    if decision.allowed:
        request.scope[SCOPE_KEY] = decision.token
    return decision


@overload
def require_private_token(
    endpoint: Endpoint,
    *,
    policy: Policy | None = None,
    methods: Iterable[str] | None = None,
    accept: Iterable[str] | None = None,
) -> Endpoint: ...


@overload
def require_private_token(
    endpoint: None = None,
    *,
    policy: Policy | None = None,
    methods: Iterable[str] | None = None,
    accept: Iterable[str] | None = None,
) -> Callable[[Endpoint], Endpoint]: ...


def require_private_token(
    endpoint: Endpoint | None = None,
    *,
    policy: Policy | None = None,
    methods: Iterable[str] | None = None,
    accept: Iterable[str] | None = None,
) -> Any:
    """Decorate a Starlette endpoint ``async def f(request)`` so it needs a valid token.

    ``methods`` limits protection to those methods (e.g. ``{"POST"}``); ``accept`` to those
    trust signals (e.g. ``{"private-token"}``: a fresh token, not a verified session).
    A CORS preflight gets ``204`` without running the endpoint.
    """
    names = accept_names(accept, policy)  # a typo fails here, at import
    methods_filter = MethodFilter(methods)

    def decorate(func: Endpoint) -> Endpoint:
        if not (
            inspect.iscoroutinefunction(func)
            or inspect.iscoroutinefunction(type(func).__call__)  # an object with async __call__
        ):
            # The wrapper awaits the endpoint: a plain def would fail with a TypeError, a 500,
            # on the first request that passes (its token already spent).
            raise ConfigurationError(
                f"endpoint {getattr(func, '__qualname__', func)!r}",
                "require_private_token decorates an async endpoint (async def f(request))",
            )

        @functools.wraps(func)
        async def wrapper(request: Request, *args: Any, **kwargs: Any) -> Response:
            if preflight(request.scope):
                return Response(status_code=PREFLIGHT_STATUS)
            if methods_filter.exempt(request.method):
                return await func(request, *args, **kwargs)
            decision = await check_request(request, policy, names)
            if not decision.allowed:
                return refusal_response(decision, request.method)
            response = await func(request, *args, **kwargs)
            apply_decision(response, decision)
            return response

        return wrapper  # type: ignore[return-value]

    if endpoint is not None:
        return decorate(endpoint)
    return decorate


class PrivateTokenRequired(HTTPException, PrivateTokenError):
    """The policy's refusal as an ``HTTPException``: Starlette's and FastAPI's own handlers
    answer it with its status, ``WWW-Authenticate``, ``Retry-After``, ``Cache-Control`` and
    every ``Set-Cookie`` (the session cookie a challenge is bound to), and a short
    ``detail`` body. :func:`exception_handler` answers it with the policy's exact response
    (the ``challenge_body`` page) instead."""

    def __init__(self, decision: Decision) -> None:
        self.decision = decision
        lines = [(k, v) for k, v in decision.header_lines() if k.lower() != _CONTENT_TYPE]
        # Headers keeps repeated names, so each cookie gets its own Set-Cookie line.
        headers = Headers(raw=encode_headers(lines))
        detail = HTTPStatus(decision.status).phrase if decision.status in _STATUSES else None
        super().__init__(decision.status, detail=detail, headers=headers)


_STATUSES = frozenset(s.value for s in HTTPStatus)


class PreflightAnswered(HTTPException, PrivateTokenError):
    """A CORS preflight reached a protected dependency: ``204``, the endpoint does not run."""

    def __init__(self) -> None:
        super().__init__(PREFLIGHT_STATUS)


def private_token_dependency(
    policy: Policy | None = None, *, accept: Iterable[str] | None = None
) -> Callable[[Request, Response], Awaitable[TokenInfo | None]]:
    """A FastAPI dependency: ``Depends(private_token_dependency())`` returns the TokenInfo.

    :class:`pat_middleware.integrations.fastapi.PrivateTokenSecurity` is the same check,
    shown in the OpenAPI document as a security scheme; prefer it with FastAPI. Refusals
    raise :class:`PrivateTokenRequired`, which FastAPI answers by itself.
    """
    names = accept_names(accept, policy)

    async def dependency(request: Request, response: Response) -> TokenInfo | None:
        return await depend(request, response, policy, names)

    return dependency


async def depend(
    request: Request,
    response: Response,
    policy: Policy | None,
    accept: Collection[str] | None,
) -> TokenInfo | None:
    """What a dependency does: judge the request, raise the refusal, or hand the pass's
    cookies and ``Cache-Control: private`` on. With :class:`PrivateTokenMiddleware`
    installed, the middleware writes them on whatever the endpoint returns; without it,
    they go on the response FastAPI gives dependencies, which it merges into the response
    it builds from an endpoint's return value (not into a ``Response`` the endpoint returns
    itself: install the middleware for such endpoints)."""
    if preflight(request.scope):
        raise PreflightAnswered()
    decision = await check_request(request, policy, accept)
    if not decision.allowed:
        raise PrivateTokenRequired(decision)
    if not defer_decision(request.scope, decision):
        apply_decision(response, decision)
    return decision.token


async def exception_handler(request: Request, exc: Exception) -> Response:
    """Render :class:`PrivateTokenRequired` as the policy's exact 401/4xx/503 response."""
    if not isinstance(exc, PrivateTokenRequired):
        raise exc  # registered for PrivateTokenRequired only: anything else is not ours
    return refusal_response(exc.decision, request.method)


__all__ = [
    "PreflightAnswered",
    "PrivateTokenRequired",
    "apply_decision",
    "check_request",
    "depend",
    "exception_handler",
    "policy_for",
    "private_token_dependency",
    "refusal_response",
    "require_private_token",
    "set_cookies",
]
