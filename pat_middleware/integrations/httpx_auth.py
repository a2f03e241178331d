"""An ``httpx.Auth`` that answers ``PrivateToken`` challenges (RFC 9577) with tokens from one
issuer, for clients, crawlers, monitors and tests of a protected origin::

    from pat_middleware.integrations.httpx_auth import PrivateTokenAuth

    auth = PrivateTokenAuth("https://issuer.example")      # issuer URL or directory URL
    with httpx.Client(auth=auth) as client:                # or httpx.AsyncClient
        client.post("https://origin.example/signup", data=...)

A ``401`` holding a challenge from that issuer gets one token, fetched with the issuer client
(:func:`pat_middleware.issuer.client.fetch_token`), and the request is sent once more with
``Authorization: PrivateToken token=...`` and the cookies the 401 set. Never more than one
retry per request: the answer to the retry is returned as it is. A 401 without
``PrivateToken`` challenges, and a request that carries its own ``Authorization``, pass
through untouched. When a challenge cannot be answered (none from our issuer, the issuer down,
slow or refusing, max-age run out) the request raises :class:`ClientAuthError`.

``pip install 'pat-middleware[client]'`` (httpx). Importing this module imports httpx.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Generator, Iterable

import httpx

from ..core.headers import AUTHORIZATION, build_authorization
from ..errors import PrivateTokenError
from ..issuer.client import DEFAULT_TIMEOUT, fetch_token, fetch_token_async
from ..issuer.protocol import Issuer
from ._client import (
    Answer,
    ClientAuthError,
    choose_challenge,
    issue_in_process,
    issuer_name_from_url,
    located,
    merge_cookie_header,
    ours_to_answer,
    set_cookie_names,
)

_WWW_AUTHENTICATE = "www-authenticate"
_SET_COOKIE = "set-cookie"
_COOKIE = "cookie"


class TokenSource:
    """Where tokens come from: an issuer over HTTP (``issuer`` is its URL, its directory URL
    or ``host[:port]``), or an in-process :class:`~pat_middleware.issuer.Issuer` (tests).

    ``issuer_name`` is the name the issuer's challenges carry; by default the URL's host
    (with a non-default port), or the in-process issuer's name. ``timeout`` bounds each step
    of issuance and never goes past the challenge's max-age. ``client`` / ``async_client``
    are used for the issuer (its TLS, proxies, limits); without one, a fresh client is opened
    for each token. ``token_types`` restricts the token types answered.
    """

    __slots__ = ("_async_client", "_client", "_local", "name", "timeout", "token_types", "url")

    def __init__(
        self,
        issuer: str | Issuer,
        *,
        issuer_name: str | None = None,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        client: httpx.Client | None = None,
        async_client: httpx.AsyncClient | None = None,
        token_types: Iterable[int] | None = None,
    ) -> None:
        if isinstance(issuer, Issuer):
            self._local: Issuer | None = issuer
            self.url: str | None = None
            self.name = issuer_name or issuer.name
        else:
            self._local, self.url = None, issuer
            self.name = issuer_name or issuer_name_from_url(issuer)
        self.timeout = timeout
        self.token_types = frozenset(token_types) if token_types is not None else None
        self._client = client
        self._async_client = async_client

    def __repr__(self) -> str:
        where = self.url if self.url is not None else "in process"
        return f"TokenSource(name={self.name!r}, issuer={where!r})"

    def choose(self, www_authenticate: Iterable[str]) -> Answer:
        """The challenge from this issuer in a 401's ``WWW-Authenticate`` values."""
        return choose_challenge(www_authenticate, self.name, token_types=self.token_types)

    def token(self, answer: Answer) -> bytes:
        """A token for ``answer``'s challenge (blocking)."""
        answer.check_fresh()
        if self._local is not None:
            return issue_in_process(self._local, answer)
        url = self._url()
        timeout = _bounded(self.timeout, answer.remaining())
        opened = httpx.Client() if self._client is None else contextlib.nullcontext(self._client)
        try:
            with opened as client:
                token = fetch_token(answer.challenge, answer.key, url, client, timeout=timeout)
        except PrivateTokenError as e:
            raise ClientAuthError(f"no token from the issuer at {url}: {e}") from e
        answer.check_fresh()
        return token.to_bytes()

    async def token_async(self, answer: Answer) -> bytes:
        """:meth:`token`, awaiting the issuer."""
        answer.check_fresh()
        if self._local is not None:
            return issue_in_process(self._local, answer)
        url = self._url()
        timeout = _bounded(self.timeout, answer.remaining())
        opened = (
            httpx.AsyncClient()
            if self._async_client is None
            else contextlib.nullcontext(self._async_client)
        )
        try:
            async with opened as client:
                token = await fetch_token_async(
                    answer.challenge, answer.key, url, client, timeout=timeout
                )
        except PrivateTokenError as e:
            raise ClientAuthError(f"no token from the issuer at {url}: {e}") from e
        answer.check_fresh()
        return token.to_bytes()

    def _url(self) -> str:
        if self.url is None:  # pragma: no cover - set whenever _local is not
            raise ClientAuthError("no issuer URL")
        return self.url


def _bounded(timeout: httpx.Timeout | float, left: float | None) -> httpx.Timeout | float:
    """``timeout`` with no phase longer than ``left`` seconds (the challenge's max-age)."""
    if left is None:
        return timeout
    if not isinstance(timeout, httpx.Timeout):
        return min(timeout, left)

    def cap(phase: float | None) -> float:
        return left if phase is None else min(phase, left)

    return httpx.Timeout(
        connect=cap(timeout.connect),
        read=cap(timeout.read),
        write=cap(timeout.write),
        pool=cap(timeout.pool),
    )


class PrivateTokenAuth(httpx.Auth):
    """Answer ``PrivateToken`` challenges from ``issuer`` (see :class:`TokenSource` for the
    options), at most once per request, with ``httpx.Client`` and ``httpx.AsyncClient``.

    Request bodies are buffered (``requires_request_body``) so the retry can resend them.
    """

    requires_request_body = True

    def __init__(
        self,
        issuer: str | Issuer,
        *,
        issuer_name: str | None = None,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        issuer_client: httpx.Client | None = None,
        async_issuer_client: httpx.AsyncClient | None = None,
        token_types: Iterable[int] | None = None,
    ) -> None:
        self.source = TokenSource(
            issuer,
            issuer_name=issuer_name,
            timeout=timeout,
            client=issuer_client,
            async_client=async_issuer_client,
            token_types=token_types,
        )

    def __repr__(self) -> str:
        return f"PrivateTokenAuth({self.source!r})"

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response]:
        request.read()
        response = yield request
        answer = self._answer(request, response)
        if answer is None:
            return
        response.read()
        try:
            token = self.source.token(answer)
        except ClientAuthError as e:
            raise _located(e, response) from e
        _prepare_retry(request, response, token)
        yield request

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        await request.aread()
        response = yield request
        answer = self._answer(request, response)
        if answer is None:
            return
        await response.aread()
        try:
            token = await self.source.token_async(answer)
        except ClientAuthError as e:
            raise _located(e, response) from e
        _prepare_retry(request, response, token)
        yield request

    def _answer(self, request: httpx.Request, response: httpx.Response) -> Answer | None:
        """The challenge to answer, or None when this response is not ours to answer."""
        challenges = response.headers.get_list(_WWW_AUTHENTICATE)
        if not ours_to_answer(AUTHORIZATION in request.headers, response.status_code, challenges):
            return None
        try:
            return self.source.choose(challenges)
        except ClientAuthError as e:
            raise _located(e, response) from e


def _located(error: ClientAuthError, response: httpx.Response) -> ClientAuthError:
    return located(error, response.status_code, str(response.request.url))


def _prepare_retry(request: httpx.Request, response: httpx.Response, token: bytes) -> None:
    """The token, and the cookies the 401 set: httpx builds a request's ``Cookie`` header
    once, so the retry would otherwise lack the session cookie its challenge is bound to."""
    replaced = set_cookie_names(response.headers.get_list(_SET_COOKIE))
    if replaced:
        jar = httpx.Cookies()
        jar.extract_cookies(response)
        scratch = httpx.Request(request.method, request.url)
        jar.set_cookie_header(scratch)
        merged = merge_cookie_header(
            request.headers.get(_COOKIE), replaced, scratch.headers.get(_COOKIE)
        )
        if merged is None:
            request.headers.pop(_COOKIE, None)
        else:
            request.headers[_COOKIE] = merged
    request.headers[AUTHORIZATION] = build_authorization(token)


__all__ = ["ClientAuthError", "PrivateTokenAuth", "TokenSource"]
