"""Test helpers for apps protected by pat-middleware: an in-process issuer, settings that
trust it, and a wrapper that lets a framework's own test client pass challenges.

The pytest plugin (:mod:`.pytest_plugin`) hands these out as the ``pat_issuer``,
``pat_settings``, ``pat_policy`` and ``pat_client`` fixtures; unittest suites build them
directly::

    issuer = PatIssuer()                                   # a type-2 issuer, keys in memory
    settings = PatSettings(issuer)(protect=["/signup"])    # trusts it; plain-HTTP cookies
    client = PatClient(app.test_client(), issuer)          # Flask, Django, Starlette, httpx
    assert client.post("/signup", data={...}).status_code == 200

Importing this module imports no web framework and no HTTP client: each helper imports
what it needs when it is used.
"""

from __future__ import annotations

import inspect
import secrets
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ..core.headers import AUTHORIZATION, WWW_AUTHENTICATE, build_authorization
from ..core.wire import Token, TokenChallenge
from ._client import (
    Answer,
    ClientAuthError,
    choose_challenge,
    has_private_token_challenge,
    issue_in_process,
)

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

    from ..issuer.protocol import Issuer
    from ..policy import Policy
    from ..settings import Settings
    from ..tokens.blind_rsa import IssuerKey
    from .httpx_auth import PrivateTokenAuth

#: The name challenges for the test issuer carry (``.test`` is reserved for testing).
ISSUER_NAME = "issuer.pat-middleware.test"
RSA_KEY_BITS = 2048
#: The hosts test clients send (Starlette, Django: ``testserver``; Flask: ``localhost``), as
#: the default ``origin_info``: challenges name an origin, as they should in production.
TEST_HOSTS = ("testserver", "localhost")


class PatIssuer:
    """A type-2 (Blind RSA) issuer in this process: it issues tokens for challenges without
    HTTP. ``private_key`` defaults to a new 2048-bit RSA key."""

    __test__ = False  # not a test class, whatever module imports it

    def __init__(self, name: str = ISSUER_NAME, private_key: RSAPrivateKey | None = None) -> None:
        from cryptography.hazmat.primitives.asymmetric import rsa

        from ..issuer.protocol import Issuer

        key = private_key or rsa.generate_private_key(public_exponent=65537, key_size=RSA_KEY_BITS)
        self.issuer: Issuer = Issuer(name, key)

    def __repr__(self) -> str:
        return f"PatIssuer(name={self.name!r})"

    @property
    def name(self) -> str:
        return self.issuer.name

    @property
    def key(self) -> IssuerKey:
        """The public key challenges name."""
        return self.issuer.preferred_key

    @property
    def token_key(self) -> str:
        """The key as settings and directories write it (base64url SPKI)."""
        return self.key.token_key

    @property
    def settings_entry(self) -> dict[str, str]:
        """This issuer as one entry of the ``issuers`` setting."""
        return {"name": self.name, "token_key": self.token_key}

    def issue(self, challenge: TokenChallenge) -> Token:
        """A token for ``challenge`` (which must name this issuer), under the current key."""
        if challenge.issuer_name != self.name:
            raise ClientAuthError(
                f"the challenge names issuer {challenge.issuer_name!r}, not {self.name!r}"
            )
        from ..issuer.protocol import issue_token_locally

        return issue_token_locally(self.issuer, challenge)

    def authorization(self, www_authenticate: str | Iterable[str]) -> str:
        """The ``Authorization`` value answering a ``WWW-Authenticate`` value (or values)."""
        values = [www_authenticate] if isinstance(www_authenticate, str) else www_authenticate
        answer: Answer = choose_challenge(values, self.name)
        return build_authorization(issue_in_process(self.issuer, answer))

    def answer_challenge(self, response: Any) -> dict[str, str]:
        """The headers that answer a challenged response of any test client (``status_code``
        and ``headers``): ``{"Authorization": "PrivateToken token=..."}``.
        :class:`ClientAuthError` when it holds no challenge from this issuer."""
        status = response.status_code
        values = _header_values(response.headers, WWW_AUTHENTICATE)
        if not has_private_token_challenge(status, values):
            raise ClientAuthError(
                f"expected a 401 with a PrivateToken challenge, got {status}"
            )
        return {AUTHORIZATION: self.authorization(values)}

    def httpx_auth(self) -> PrivateTokenAuth:
        """An ``httpx.Auth`` issuing from this issuer in process: for ``httpx.Client`` and
        ``httpx.AsyncClient`` (with ``ASGITransport``/``WSGITransport``). Starlette's
        ``TestClient`` is built on httpx in some versions and not in others: wrap it with
        :class:`PatClient` instead."""
        from .httpx_auth import PrivateTokenAuth

        return PrivateTokenAuth(self.issuer)

    def asgi_app(self) -> Any:
        """The issuer as a Starlette app (directory and token requests), to serve it."""
        from ..issuer.server import create_issuer_app

        return create_issuer_app(self.issuer)


class PatSettings:
    """Builds settings trusting ``issuer``, for tests: a secret generated here (the same for
    every call on this object), ``cookie_secure = false`` (test clients speak plain HTTP, and
    drop Secure cookies there), ``origin_info`` the usual test hosts (:data:`TEST_HOSTS`),
    and whatever is passed as overrides, named as in the settings file
    (``protect=["/signup"]``, ``max_age=30``, ...)."""

    __test__ = False

    def __init__(self, issuer: PatIssuer) -> None:
        self.issuer = issuer
        self.secret = secrets.token_urlsafe(32)

    def __repr__(self) -> str:
        return f"PatSettings(issuer={self.issuer.name!r}, secret=<hidden>)"

    def mapping(self, **overrides: Any) -> dict[str, Any]:
        """The settings as a mapping: Django's ``PAT_MIDDLEWARE``, a TOML file's keys."""
        data: dict[str, Any] = {
            "issuers": [self.issuer.settings_entry],
            "secret": self.secret,
            "cookie_secure": False,
            "origin_info": list(TEST_HOSTS),
        }
        data.update(overrides)
        return data

    def __call__(self, **overrides: Any) -> Settings:
        """Validated :class:`~pat_middleware.settings.Settings` (``settings=`` of the ASGI and
        WSGI middleware and of Flask's ``PrivateTokens``)."""
        from ..settings import Settings

        return Settings.from_mapping(self.mapping(**overrides), source="pat_settings")

    def policy(self, **overrides: Any) -> Policy:
        """A :class:`~pat_middleware.policy.Policy` on these settings; close it when done."""
        from ..policy import Policy

        return Policy(self(**overrides))


class PatClient:
    """A framework's test client that passes ``PrivateToken`` challenges from ``issuer``:
    Starlette's and FastAPI's ``TestClient``, Flask's ``app.test_client()``, Django's
    ``Client`` and ``AsyncClient``, ``httpx.Client`` and ``httpx.AsyncClient``.

    ``get``, ``post``, ... (and ``request(method, ...)``) call the client's own method; a
    401 with a challenge from the issuer is answered with a token and the same call is made
    once more with the ``Authorization`` header added (the client keeps the session cookie
    the 401 set). Other answers come back as they are. A body that can be read only once (a
    file object) cannot be sent twice: pass bytes. Anything else is the wrapped client's.
    """

    __test__ = False

    def __init__(self, client: Any, issuer: PatIssuer) -> None:
        self.client = client
        self.issuer = issuer
        #: The challenged responses answered so far (their 401s), newest last.
        self.challenged: list[Any] = []

    def __repr__(self) -> str:
        return f"PatClient({self.client!r}, issuer={self.issuer.name!r})"

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def request(self, method: str, *args: Any, **kwargs: Any) -> Any:
        call: Callable[..., Any] = getattr(self.client, method.lower())
        response = call(*args, **kwargs)
        if inspect.isawaitable(response):
            return self._answer_async(response, call, args, kwargs)
        if not self._challenged(response):
            return response
        return call(*args, **self._with_token(response, kwargs))

    async def _answer_async(
        self,
        pending: Awaitable[Any],
        call: Callable[..., Awaitable[Any]],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        response = await pending
        if not self._challenged(response):
            return response
        return await call(*args, **self._with_token(response, kwargs))

    def _challenged(self, response: Any) -> bool:
        values = _header_values(response.headers, WWW_AUTHENTICATE)
        return has_private_token_challenge(response.status_code, values)

    def _with_token(self, response: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        answer = self.issuer.answer_challenge(response)
        self.challenged.append(response)
        headers = dict(kwargs.get("headers") or {})
        headers.update(answer)
        return {**kwargs, "headers": headers}

    def get(self, *args: Any, **kwargs: Any) -> Any:
        return self.request("get", *args, **kwargs)

    def post(self, *args: Any, **kwargs: Any) -> Any:
        return self.request("post", *args, **kwargs)

    def put(self, *args: Any, **kwargs: Any) -> Any:
        return self.request("put", *args, **kwargs)

    def patch(self, *args: Any, **kwargs: Any) -> Any:
        return self.request("patch", *args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        return self.request("delete", *args, **kwargs)

    def head(self, *args: Any, **kwargs: Any) -> Any:
        return self.request("head", *args, **kwargs)

    def options(self, *args: Any, **kwargs: Any) -> Any:
        return self.request("options", *args, **kwargs)


def _header_values(headers: Any, name: str) -> list[str]:
    """Every value of a header, from any test client's headers: httpx's ``get_list``,
    Werkzeug's ``getlist``, else one ``get`` (Django: one value per name)."""
    for method in ("get_list", "getlist"):
        values = getattr(headers, method, None)
        if values is not None:
            return [str(v) for v in values(name)]
    value = headers.get(name) if isinstance(headers, Mapping) or hasattr(headers, "get") else None
    return [str(value)] if value is not None else []


__all__ = ["ISSUER_NAME", "TEST_HOSTS", "PatClient", "PatIssuer", "PatSettings"]
