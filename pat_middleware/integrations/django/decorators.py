"""``private_token_required``: protect one Django view, sync or async.

Works with or without :class:`~.middleware.PrivateTokenMiddleware`; a request the middleware
(or :class:`~pat_middleware.integrations.wsgi.PrivateTokenWSGIMiddleware`) already
passed is not judged again.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar, cast, overload

from asgiref.sync import iscoroutinefunction
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase

from .._common import PREFLIGHT_STATUS, MethodFilter, accept_names
from .middleware import (
    acheck_request,
    apply_decision,
    check_request,
    preflight,
    refusal_response,
)

_View = TypeVar("_View", bound=Callable[..., Any])


def _decorate(view: _View, methods: Iterable[str] | None, accept: frozenset[str] | None) -> _View:
    methods_filter = MethodFilter(methods)

    def exempt(request: HttpRequest) -> bool:
        return methods_filter.exempt(request.method)

    if iscoroutinefunction(view):
        async_view = cast(Callable[..., Awaitable[HttpResponseBase]], view)

        @functools.wraps(view)
        async def async_wrapper(
            request: HttpRequest, *args: Any, **kwargs: Any
        ) -> HttpResponseBase:
            if preflight(request):
                return HttpResponse(status=PREFLIGHT_STATUS)
            if exempt(request):
                return await async_view(request, *args, **kwargs)
            decision = await acheck_request(request, accept=accept)
            if not decision.allowed:
                return refusal_response(decision, request.method)
            response = await async_view(request, *args, **kwargs)
            apply_decision(response, decision)
            return response

        return cast(_View, async_wrapper)

    sync_view = cast(Callable[..., HttpResponseBase], view)

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if preflight(request):
            return HttpResponse(status=PREFLIGHT_STATUS)
        if exempt(request):
            return sync_view(request, *args, **kwargs)
        decision = check_request(request, accept=accept)
        if not decision.allowed:
            return refusal_response(decision, request.method)
        response = sync_view(request, *args, **kwargs)
        apply_decision(response, decision)
        return response

    return cast(_View, wrapper)


@overload
def private_token_required(
    view: _View, *, methods: Iterable[str] | None = None, accept: Iterable[str] | None = None
) -> _View: ...


@overload
def private_token_required(
    view: None = None, *, methods: Iterable[str] | None = None, accept: Iterable[str] | None = None
) -> Callable[[_View], _View]: ...


def private_token_required(
    view: _View | None = None,
    *,
    methods: Iterable[str] | None = None,
    accept: Iterable[str] | None = None,
) -> _View | Callable[[_View], _View]:
    """Make a view need a valid token; ``methods`` (e.g. ``["POST"]``) limits that to those,
    ``accept`` to those trust signals (e.g. ``["private-token"]``).

    The view sees the result as ``request.private_token``. A CORS preflight gets ``204``
    without running the view.
    """
    names = accept_names(accept)  # a typo fails here, at import
    if view is not None:
        return _decorate(view, methods, names)

    def decorator(func: _View) -> _View:
        return _decorate(func, methods, names)

    return decorator


__all__ = ["private_token_required"]
