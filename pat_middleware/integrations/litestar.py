"""Litestar: a plugin and a guard.

::

    tokens = PrivateTokenPlugin(settings_file="pat.toml")
    app = Litestar(route_handlers=[...], plugins=[tokens])

    @post("/comment", guards=[private_token_guard()])
    async def comment(request: Request) -> ...: ...

The plugin builds the policy when the app is built (a :class:`ConfigurationError` then stops
the import, naming the setting), installs
:class:`~pat_middleware.integrations.asgi.PrivateTokenMiddleware` first (the settings'
``protect`` paths; a guard's pass gets its cookies and ``Cache-Control: private`` from it)
and answers :class:`PrivateTokenRequired` with the policy's exact response (401 with the
challenge and the session cookie it is bound to). ``request.scope["private_token"]`` holds
the :class:`~pat_middleware.policy.TokenInfo` of a passed request. Importing this module
imports Litestar.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any, cast

from litestar import Request, Response
from litestar.config.app import AppConfig
from litestar.connection import ASGIConnection
from litestar.exceptions import HTTPException
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import DefineMiddleware
from litestar.plugins import InitPluginProtocol

from ..errors import ConfigurationError, PrivateTokenError
from ..policy import SCOPE_KEY, Decision, Policy, TokenInfo
from ..policy.observe import MetricsHook
from ..settings import Settings
from ._common import (
    MethodFilter,
    accept_names,
    accepts,
    passed,
    resolve_policy,
    set_cookies,
)
from .asgi import (
    LATE_SCOPE_KEY,
    POLICY_SCOPE_KEY,
    LateDecision,
    PrivateTokenMiddleware,
    defer_decision,
    preflight,
    request_info,
)

Guard = Callable[[ASGIConnection[Any, Any, Any, Any], BaseRouteHandler], Awaitable[None]]


class PrivateTokenRequired(HTTPException, PrivateTokenError):
    """The policy's refusal; the plugin's handler answers it with the exact response."""

    def __init__(self, decision: Decision) -> None:
        self.decision = decision
        reason = decision.reason.value if decision.reason else decision.outcome.value
        super().__init__(detail=reason, status_code=decision.status)


def refusal_response(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    """The exception handler the plugin installs: the policy's 401/4xx/503 as it is."""
    if not isinstance(exc, PrivateTokenRequired):
        raise exc  # registered for PrivateTokenRequired only
    decision = exc.decision
    # The policy's Content-Type as a header: given as media_type, Litestar appends a second
    # "; charset=utf-8" to a text/* type that already names its charset.
    response = Response(decision.body, status_code=decision.status, headers=dict(decision.headers))
    set_cookies(response.set_cookie, decision.cookies, lower_same_site=True)
    return response


class PrivateTokenPlugin(InitPluginProtocol):
    """Installs the middleware and the refusal handler; options as for
    :class:`~pat_middleware.integrations.asgi.PrivateTokenMiddleware`."""

    def __init__(
        self,
        *,
        policy: Policy | None = None,
        settings: Settings | None = None,
        settings_file: str | Path | None = None,
        metrics: MetricsHook | None = None,
    ) -> None:
        self.policy = resolve_policy(policy, settings, settings_file, metrics)

    def __repr__(self) -> str:
        return f"PrivateTokenPlugin({self.policy!r})"

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        # A pure ASGI middleware: Litestar's scope and event types are TypedDicts of the
        # same messages.
        middleware = DefineMiddleware(cast(Any, PrivateTokenMiddleware), policy=self.policy)
        app_config.middleware.insert(0, middleware)
        app_config.exception_handlers[PrivateTokenRequired] = refusal_response
        return app_config


def private_token_guard(
    *,
    policy: Policy | None = None,
    methods: Iterable[str] | None = None,
    accept: Iterable[str] | None = None,
) -> Guard:
    """A guard: the route needs a pass (``accept``: of those trust signals; ``methods``: for
    those methods only). A CORS preflight is let through (Litestar answers OPTIONS itself).
    The policy is the plugin's unless given."""
    names = accept_names(accept, policy)
    methods_filter = MethodFilter(methods)

    async def guard(
        connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
    ) -> None:
        scope = cast(dict[str, Any], connection.scope)
        if scope["type"] != "http" or preflight(scope):
            return
        if methods_filter.exempt(scope.get("method")):
            return
        token = scope.get(SCOPE_KEY)
        if accepts(token if isinstance(token, TokenInfo) else None, names) and passed(token):
            return
        installed = scope.get(POLICY_SCOPE_KEY)
        if not isinstance(installed, Policy) or not isinstance(
            scope.get(LATE_SCOPE_KEY), LateDecision
        ):
            # Asked before the token is judged, so a misconfigured app spends none: only the
            # plugin's middleware can put a pass's cookies on the handler's response.
            raise ConfigurationError(
                "plugins", "private_token_guard needs PrivateTokenPlugin in the app's plugins"
            )
        decision = await (policy or installed).evaluate_async(
            request_info(scope), force=True, accept=names
        )
        if not decision.allowed:
            raise PrivateTokenRequired(decision)
        scope[SCOPE_KEY] = decision.token
        defer_decision(scope, decision)

    return guard


__all__ = ["PrivateTokenPlugin", "PrivateTokenRequired", "private_token_guard", "refusal_response"]
