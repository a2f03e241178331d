"""FastAPI: a security scheme whose dependency needs a Private Access Token.

``Security(PrivateTokenSecurity())`` (or ``Depends``) judges the request and returns its
:class:`~pat_middleware.policy.TokenInfo`; the OpenAPI document shows the scheme as
``{"type": "http", "scheme": "PrivateToken"}``. Importing this module imports FastAPI.

FastAPI's own ``HTTPBase`` is not used: it answers ``WWW-Authenticate: Privatetoken``
(title-cased, without the challenge's parameters), which no Privacy Pass client can
answer. A refusal here raises
:class:`~pat_middleware.integrations.starlette.PrivateTokenRequired`, an ``HTTPException``
that FastAPI answers by itself with the policy's status, ``WWW-Authenticate`` challenge and
cookies (register
:func:`~pat_middleware.integrations.starlette.exception_handler` for the policy's exact
body as well).
"""

# No ``from __future__ import annotations`` here: FastAPI reads the annotations of
# ``PrivateTokenSecurity.__call__`` to inject the request and response, and cannot resolve
# them as strings on a callable instance (it has no ``__globals__``).

from collections.abc import Iterable
from typing import Any

from fastapi.openapi.models import HTTPBase as HTTPBaseModel
from fastapi.security.base import SecurityBase
from starlette.requests import Request
from starlette.responses import Response

from ..core.headers import WWW_AUTHENTICATE
from ..policy import Policy, TokenInfo
from ._common import MethodFilter, accept_names
from .starlette import depend

#: The HTTP authentication scheme name (RFC 9577 §2.1), as the OpenAPI document spells it.
SCHEME = "PrivateToken"


class PrivateTokenSecurity(SecurityBase):
    """A FastAPI security dependency: the request needs a trust signal the policy accepts.

    ``policy``: the policy to ask (default: the one :class:`PrivateTokenMiddleware` put in
    the scope); ``accept``: names of the trust signals this route accepts (None: all);
    ``methods``: protect only those methods (the dependency returns None for the others).
    The pass's cookies and ``Cache-Control: private`` reach the endpoint's response (see
    :func:`~pat_middleware.integrations.starlette.depend`); a CORS preflight gets ``204``
    without running the endpoint. Document the 401 on a route or router with
    ``responses=scheme.responses``.
    """

    def __init__(
        self,
        policy: Policy | None = None,
        *,
        accept: Iterable[str] | None = None,
        methods: Iterable[str] | None = None,
        scheme_name: str | None = None,
        description: str | None = None,
    ) -> None:
        self.model = HTTPBaseModel(scheme=SCHEME, description=description)
        self.scheme_name = scheme_name or SCHEME
        self.policy = policy
        self.accept = accept_names(accept, policy)
        self._methods = MethodFilter(methods)

    def __repr__(self) -> str:
        return f"PrivateTokenSecurity(accept={sorted(self.accept) if self.accept else None})"

    @property
    def responses(self) -> dict[int | str, dict[str, Any]]:
        """The refusals to document on a route: ``@app.get(..., responses=s.responses)``."""
        challenge = {"description": "One PrivateToken challenge per issuer (RFC 9577 §2.1)"}
        return {
            401: {
                "description": "A Private Access Token is required, or was refused",
                "headers": {WWW_AUTHENTICATE: {**challenge, "schema": {"type": "string"}}},
            },
            503: {"description": "The replay store or the issuer keys are unavailable"},
        }

    async def __call__(self, request: Request, response: Response) -> TokenInfo | None:
        if self._methods.exempt(request.method):
            return None
        return await depend(request, response, self.policy, self.accept)


__all__ = ["SCHEME", "PrivateTokenSecurity"]
