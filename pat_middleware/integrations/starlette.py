"""Starlette / FastAPI conveniences: an endpoint decorator and a FastAPI dependency.

Both need the policy: pass it explicitly, or install :class:`PrivateTokenMiddleware`, which
puts it in the scope. Importing this module imports Starlette.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

from starlette.requests import Request
from starlette.responses import Response

from ..core.headers import CACHE_CONTROL, private_cache_control
from ..errors import ConfigurationError
from ..policy import SCOPE_KEY, Decision, Policy, SetCookie, TokenInfo
from ..settings import protected_methods
from ._common import passed
from .asgi import POLICY_SCOPE_KEY, encode_headers, request_info

Endpoint = TypeVar("Endpoint", bound=Callable[..., Awaitable[Response]])


def _policy_for(request: Request, policy: Policy | None) -> Policy:
    found = policy or request.scope.get(POLICY_SCOPE_KEY)
    if not isinstance(found, Policy):
        raise ConfigurationError(
            "policy",
            "require_private_token needs a policy: pass policy= or install PrivateTokenMiddleware",
        )
    return found


def _set_cookies(response: Response, cookies: tuple[SetCookie, ...]) -> None:
    for c in cookies:
        response.set_cookie(
            c.name,
            c.value,
            max_age=c.max_age,
            path=c.path,
            domain=c.domain,
            secure=c.secure,
            httponly=True,
            samesite=c.same_site.lower(),  # type: ignore[arg-type]
        )


def _apply(response: Response, decision: Decision) -> None:
    """A pass's cookies on the endpoint's response, and its Cache-Control made private."""
    _set_cookies(response, decision.cookies)
    if decision.private:
        existing = response.headers.getlist(CACHE_CONTROL)
        response.headers[CACHE_CONTROL] = private_cache_control(
            ", ".join(existing) if existing else None
        )


def _response(decision: Decision) -> Response:
    response = Response(decision.body, status_code=decision.status)
    response.raw_headers.extend(encode_headers(decision.headers))
    _set_cookies(response, decision.cookies)
    return response


async def check_request(request: Request, policy: Policy | None = None) -> Decision:
    """Run the policy on ``request`` as a protected request; sets ``scope['private_token']``."""
    active = _policy_for(request, policy)
    done = passed(request.scope.get(SCOPE_KEY))
    if done is not None:  # the middleware already passed it
        return done
    decision = await active.evaluate_async(request_info(request.scope), force=True)
    if decision.allowed:
        request.scope[SCOPE_KEY] = decision.token
    return decision


@overload
def require_private_token(
    endpoint: Endpoint, *, policy: Policy | None = None, methods: set[str] | None = None
) -> Endpoint: ...


@overload
def require_private_token(
    endpoint: None = None, *, policy: Policy | None = None, methods: set[str] | None = None
) -> Callable[[Endpoint], Endpoint]: ...


def require_private_token(
    endpoint: Endpoint | None = None,
    *,
    policy: Policy | None = None,
    methods: set[str] | None = None,
) -> Any:
    """Decorate a Starlette endpoint ``async def f(request)`` so it needs a valid token.

    ``methods`` limits protection to those methods (e.g. ``{"POST"}``).
    """

    def decorate(func: Endpoint) -> Endpoint:
        upper = protected_methods(methods) if methods else None

        @functools.wraps(func)
        async def wrapper(request: Request, *args: Any, **kwargs: Any) -> Response:
            if upper is not None and request.method not in upper:
                return await func(request, *args, **kwargs)
            decision = await check_request(request, policy)
            if not decision.allowed:
                return _response(decision)
            response = await func(request, *args, **kwargs)
            _apply(response, decision)
            return response

        return wrapper  # type: ignore[return-value]

    if endpoint is not None:
        return decorate(endpoint)
    return decorate


class PrivateTokenRequired(Exception):
    """Raised by the FastAPI dependency; install :func:`exception_handler` to render it."""

    def __init__(self, decision: Decision) -> None:
        self.decision = decision
        super().__init__(decision.reason.value if decision.reason else decision.outcome.value)


def private_token_dependency(
    policy: Policy | None = None,
) -> Callable[[Request, Response], Awaitable[TokenInfo | None]]:
    """A FastAPI dependency: ``Depends(private_token_dependency())`` returns the TokenInfo.

    Refusals raise :class:`PrivateTokenRequired`; register :func:`exception_handler` for it.
    On a pass the policy's cookies (the verified-session mark) and ``Cache-Control:
    private`` go on the response FastAPI gives dependencies, which it merges into the
    endpoint's response (an endpoint returning its own Response with a Cache-Control then
    carries both lines; ``private`` still binds every shared cache).
    """

    async def dependency(request: Request, response: Response) -> TokenInfo | None:
        decision = await check_request(request, policy)
        if not decision.allowed:
            raise PrivateTokenRequired(decision)
        _apply(response, decision)
        return decision.token

    return dependency


async def exception_handler(request: Request, exc: Exception) -> Response:
    """Render :class:`PrivateTokenRequired` as the policy's 401/4xx/503 response."""
    if not isinstance(exc, PrivateTokenRequired):
        raise exc  # registered for PrivateTokenRequired only: anything else is not ours
    return _response(exc.decision)


__all__ = [
    "PrivateTokenRequired",
    "check_request",
    "exception_handler",
    "private_token_dependency",
    "require_private_token",
]
