"""A ``requests`` auth that answers ``PrivateToken`` challenges with tokens from one issuer::

    from pat_middleware.integrations.requests_auth import PrivateTokenRequestsAuth

    session = requests.Session()
    session.auth = PrivateTokenRequestsAuth("https://issuer.example")
    session.post("https://origin.example/signup", data=..., timeout=10)

The same behaviour as :class:`~pat_middleware.integrations.httpx_auth.PrivateTokenAuth`: one
token and one retry (with the cookies the 401 set) per challenged request, through a response
hook as requests' own ``HTTPDigestAuth`` does; a 401 without ``PrivateToken`` challenges and a
request with its own ``Authorization`` pass through; :class:`ClientAuthError` when the
challenge cannot be answered. The token comes from the issuer client, which speaks httpx:
``pip install 'pat-middleware[requests]'`` brings both.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import httpx
from requests import PreparedRequest, Response
from requests.auth import AuthBase
from requests.cookies import get_cookie_header

from ..core.headers import AUTHORIZATION, WWW_AUTHENTICATE, build_authorization
from ..issuer.client import DEFAULT_TIMEOUT
from ..issuer.protocol import Issuer
from ._client import (
    ClientAuthError,
    located,
    merge_cookie_header,
    ours_to_answer,
    set_cookie_names,
)
from .httpx_auth import TokenSource

_SET_COOKIE = "Set-Cookie"
_COOKIE = "Cookie"


class PrivateTokenRequestsAuth(AuthBase):
    """Answer ``PrivateToken`` challenges from ``issuer`` (a URL, a directory URL or an
    in-process :class:`~pat_middleware.issuer.Issuer`), at most once per request. Options as
    :class:`~pat_middleware.integrations.httpx_auth.TokenSource`; ``issuer_client`` is the
    ``httpx.Client`` used for the issuer."""

    def __init__(
        self,
        issuer: str | Issuer,
        *,
        issuer_name: str | None = None,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        issuer_client: httpx.Client | None = None,
        token_types: Iterable[int] | None = None,
    ) -> None:
        self.source = TokenSource(
            issuer,
            issuer_name=issuer_name,
            timeout=timeout,
            client=issuer_client,
            token_types=token_types,
        )

    def __repr__(self) -> str:
        return f"PrivateTokenRequestsAuth({self.source!r})"

    def __call__(self, request: PreparedRequest) -> PreparedRequest:
        if AUTHORIZATION in request.headers:
            return request  # the caller authenticates otherwise: not ours to answer
        tell = getattr(request.body, "tell", None)
        position = tell() if tell is not None else None

        def answer(response: Response, **kwargs: Any) -> Response:
            return self._answer(response, position, kwargs)

        request.register_hook("response", answer)
        return request

    def _answer(self, response: Response, position: int | None, send: dict[str, Any]) -> Response:
        sent = response.request
        challenges = _header_values(response, WWW_AUTHENTICATE)
        if not ours_to_answer(AUTHORIZATION in sent.headers, response.status_code, challenges):
            return response  # not a challenge, or already the retry: never a second one
        try:
            token = self.source.token(self.source.choose(challenges))
        except ClientAuthError as e:
            response.close()  # the caller gets no response to close: release it here
            raise located(e, response.status_code, response.url) from e
        # Release the connection so the retry can reuse it (as HTTPDigestAuth does).
        _ = response.content
        response.close()
        retry = sent.copy()
        seek = getattr(retry.body, "seek", None)
        if position is not None and seek is not None:
            seek(position)
        replaced = set_cookie_names(_header_values(response, _SET_COOKIE))
        if replaced:
            existing = retry.headers.pop(_COOKIE, None)
            # Unset first: a cookie jar adds nothing to a request that has a Cookie header.
            merged = merge_cookie_header(
                existing if isinstance(existing, str) else None,
                replaced,
                get_cookie_header(response.cookies, retry),
            )
            if merged is not None:
                retry.headers[_COOKIE] = merged
        retry.headers[AUTHORIZATION] = build_authorization(token)
        answered: Response = response.connection.send(retry, **send)
        answered.history.append(response)
        answered.request = retry
        return answered


def _header_values(response: Response, name: str) -> list[str]:
    """Every value of a header as received (requests folds repeats with commas, which a
    ``Set-Cookie`` date or a challenge list cannot survive)."""
    raw_headers = getattr(response.raw, "headers", None)
    getlist = getattr(raw_headers, "getlist", None)
    if getlist is not None:
        return list(getlist(name))
    value = response.headers.get(name)
    return [value] if value is not None else []


__all__ = ["ClientAuthError", "PrivateTokenRequestsAuth"]
