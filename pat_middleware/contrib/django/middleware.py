"""``PrivateTokenMiddleware``: protects the paths ``PAT_MIDDLEWARE`` lists, sync or async.

A passed request carries its :class:`~pat_middleware.policy.TokenInfo` as
``request.private_token`` (``None`` on unprotected paths); refusals are answered here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from http.cookies import CookieError, SimpleCookie
from typing import cast

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase

from ...policy import SCOPE_KEY, Decision, Outcome, Policy, RequestInfo, TokenInfo
from . import get_policy

#: Header values longer than this are dropped before parsing (the policy bounds them again).
MAX_HEADER_BYTES = 16384

SyncGetResponse = Callable[[HttpRequest], HttpResponseBase]
AsyncGetResponse = Callable[[HttpRequest], Awaitable[HttpResponseBase]]


def _meta(request: HttpRequest, key: str) -> str | None:
    value = request.META.get(key)
    if not isinstance(value, str) or not value or len(value) > MAX_HEADER_BYTES:
        return None
    return value


def request_info(request: HttpRequest) -> RequestInfo:
    """Method, path and headers of a Django request (never calls ``get_host()``)."""
    return RequestInfo(
        method=request.method or "GET",
        path=request.path,
        host=_meta(request, "HTTP_HOST"),
        authorization=_meta(request, "HTTP_AUTHORIZATION"),
        cookie=_meta(request, "HTTP_COOKIE"),
    )


def passed_token(request: HttpRequest) -> TokenInfo | None:
    """The TokenInfo this request already passed with (this middleware or the WSGI one)."""
    for found in (getattr(request, SCOPE_KEY, None), request.META.get(SCOPE_KEY)):
        if isinstance(found, TokenInfo):
            return found
    return None


def _already(request: HttpRequest) -> Decision | None:
    token = passed_token(request)
    if token is None:
        return None
    setattr(request, SCOPE_KEY, token)
    return Decision(Outcome.PASS, token=token)


def _record(request: HttpRequest, decision: Decision) -> Decision:
    if decision.allowed:
        setattr(request, SCOPE_KEY, decision.token)
    return decision


def check_request(request: HttpRequest, policy: Policy | None = None) -> Decision:
    """Judge ``request`` as protected; on a pass sets ``request.private_token``."""
    done = _already(request)
    if done is not None:
        return done
    active = policy or get_policy()
    return _record(request, active.evaluate(request_info(request), force=True))


async def acheck_request(request: HttpRequest, policy: Policy | None = None) -> Decision:
    """:func:`check_request` for async views and middleware."""
    done = _already(request)
    if done is not None:
        return done
    active = policy or get_policy()
    return _record(request, await active.evaluate_async(request_info(request), force=True))


def refusal_response(decision: Decision) -> HttpResponse:
    """The policy's 401/4xx/503 answer as a Django response."""
    response = HttpResponse(decision.body, status=decision.status)
    add_headers(response, decision.headers)
    return response


def add_headers(response: HttpResponseBase, headers: tuple[tuple[str, str], ...]) -> None:
    """Add the policy's headers; each ``Set-Cookie`` goes into ``response.cookies``."""
    for name, value in headers:
        if name.lower() != "set-cookie":
            response.headers[name] = value
            continue
        cookie: SimpleCookie = SimpleCookie()
        try:
            cookie.load(value)
        except CookieError:  # the policy renders only cookies SimpleCookie reads back
            continue
        for key, morsel in cookie.items():
            response.cookies[key] = morsel


class PrivateTokenMiddleware:
    """Protect the paths (and methods) ``PAT_MIDDLEWARE`` lists; serves sync and async."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: SyncGetResponse | AsyncGetResponse) -> None:
        self.get_response = get_response
        self.async_mode = iscoroutinefunction(get_response)
        if self.async_mode:
            markcoroutinefunction(self)
        get_policy()  # fail at start-up, not on the first request, when settings are wrong

    def __repr__(self) -> str:
        return f"PrivateTokenMiddleware(async_mode={self.async_mode})"

    def _policy_if_protected(self, request: HttpRequest) -> Policy | None:
        """The policy when this request is protected; None (and no token) when it is not."""
        policy = get_policy()
        info = request_info(request)
        if passed_token(request) is None and not policy.protects(info.method, info.path):
            setattr(request, SCOPE_KEY, None)
            return None
        return policy

    def __call__(self, request: HttpRequest) -> HttpResponseBase | Awaitable[HttpResponseBase]:
        if self.async_mode:
            return self.__acall__(request)
        get_response = cast(SyncGetResponse, self.get_response)
        policy = self._policy_if_protected(request)
        if policy is None:
            return get_response(request)
        decision = check_request(request, policy)
        if not decision.allowed:
            return refusal_response(decision)
        response = get_response(request)
        add_headers(response, decision.headers)
        return response

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        get_response = cast(AsyncGetResponse, self.get_response)
        policy = self._policy_if_protected(request)
        if policy is None:
            return await get_response(request)
        decision = await acheck_request(request, policy)
        if not decision.allowed:
            return refusal_response(decision)
        response = await get_response(request)
        add_headers(response, decision.headers)
        return response


__all__ = [
    "PrivateTokenMiddleware",
    "acheck_request",
    "add_headers",
    "check_request",
    "passed_token",
    "refusal_response",
    "request_info",
]
