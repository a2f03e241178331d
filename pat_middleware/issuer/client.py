"""Fetch a token (type 2 or type 1) from an issuer over HTTP with httpx (sync and async).

Steps: read the issuer directory (RFC path first, then the legacy one), resolve
``issuer-request-uri`` against the directory URL, check that the challenge's key is listed,
POST the TokenRequest and finalize the answer into a verified :class:`Token`. Every failure
(HTTP errors, timeouts, bad answers) is an :class:`IssuanceError` with status 502, except a
response of the wrong size, which is a :class:`DecodeError`. Bodies are read raw with a bound
(identity encoding only), redirect bodies are never read, and every request has a timeout.

:func:`issue_token_locally` (re-exported from :mod:`.protocol`) does the same in process.
This module is the only one in :mod:`pat_middleware.issuer` that imports httpx.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urljoin, urlsplit

import httpx

from ..core.keys import PublishedKey
from ..core.wire import Token, TokenChallenge
from ..errors import IssuanceError
from ..tokens.rsabssa import RandomBytes
from .protocol import (
    DIRECTORY_PATH,
    ISSUER_DIRECTORY_MEDIA_TYPE,
    LEGACY_DIRECTORY_PATH,
    MAX_DIRECTORY_SIZE,
    TOKEN_REQUEST_MEDIA_TYPE,
    TOKEN_RESPONSE_MEDIA_TYPE,
    IssuerDirectory,
    issue_token_locally,
    parse_directory,
    start_issuance,
)

#: Per-request timeouts: 5 s to connect, 10 s for each other phase.
DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
_BAD_GATEWAY = 502
_DIRECTORY_ACCEPT = f"{ISSUER_DIRECTORY_MEDIA_TYPE}, application/json;q=0.5"
_DIRECTORY_HEADERS = {"Accept": _DIRECTORY_ACCEPT, "Accept-Encoding": "identity"}
_HTTPX_ERRORS = (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError)

#: Where to find the issuer: a URL, ``host[:port]``, a parsed directory, or ``None``.
IssuerLocation = str | IssuerDirectory | None


def fetch_token(
    challenge: TokenChallenge,
    key: PublishedKey,
    issuer: IssuerLocation,
    client: httpx.Client,
    *,
    rng: RandomBytes = secrets.token_bytes,
    timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
    require_listed_key: bool = True,
) -> Token:
    """Run issuance for ``challenge`` under ``key`` against an issuer over HTTP.

    ``issuer`` is the issuer's URL (``https://host[:port]``, or the exact directory URL), a
    bare ``host[:port]`` (https assumed), an already parsed :class:`IssuerDirectory` (a
    relative request URI then resolves against ``https://<challenge.issuer_name>``), or
    ``None`` for ``https://<challenge.issuer_name>``. With ``require_listed_key`` the key
    must appear in the directory.
    """
    try:
        if isinstance(issuer, IssuerDirectory):
            directory, directory_url = issuer, _default_directory_url(challenge)
        else:
            directory, directory_url = _get_directory(
                client, _directory_urls(challenge, issuer), timeout
            )
        request_url = _request_url(directory, directory_url)
        _check_listed(directory, key, require_listed_key)
        token_request, state = start_issuance(challenge, key, rng=rng)
        post = client.build_request(
            "POST",
            request_url,
            content=token_request,
            headers=_post_headers(),
            timeout=timeout,
        )
        with _send(client, post, client.follow_redirects) as response:
            _check_response(response, "token request", TOKEN_RESPONSE_MEDIA_TYPE)
            body = read_bounded(response.iter_raw(), state.response_length, response)
    except _HTTPX_ERRORS as e:
        raise IssuanceError(f"issuer request failed: {e!r}", status=_BAD_GATEWAY) from e
    return state.finalize(body)


async def fetch_token_async(
    challenge: TokenChallenge,
    key: PublishedKey,
    issuer: IssuerLocation,
    client: httpx.AsyncClient,
    *,
    rng: RandomBytes = secrets.token_bytes,
    timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
    require_listed_key: bool = True,
) -> Token:
    """:func:`fetch_token` with an :class:`httpx.AsyncClient`."""
    try:
        if isinstance(issuer, IssuerDirectory):
            directory, directory_url = issuer, _default_directory_url(challenge)
        else:
            directory, directory_url = await _get_directory_async(
                client, _directory_urls(challenge, issuer), timeout
            )
        request_url = _request_url(directory, directory_url)
        _check_listed(directory, key, require_listed_key)
        token_request, state = start_issuance(challenge, key, rng=rng)
        post = client.build_request(
            "POST",
            request_url,
            content=token_request,
            headers=_post_headers(),
            timeout=timeout,
        )
        async with _send_async(client, post, client.follow_redirects) as response:
            _check_response(response, "token request", TOKEN_RESPONSE_MEDIA_TYPE)
            body = await _read_bounded_async(response.aiter_raw(), state.response_length, response)
    except _HTTPX_ERRORS as e:
        raise IssuanceError(f"issuer request failed: {e!r}", status=_BAD_GATEWAY) from e
    return state.finalize(body)


def fetch_directory(
    issuer: str, client: httpx.Client, *, timeout: httpx.Timeout | float = DEFAULT_TIMEOUT
) -> tuple[IssuerDirectory, str]:
    """Fetch and parse an issuer's directory. Returns it with the URL it came from."""
    try:
        return _get_directory(client, _directory_urls(None, issuer), timeout)
    except _HTTPX_ERRORS as e:
        raise IssuanceError(f"directory fetch failed: {e!r}", status=_BAD_GATEWAY) from e


async def fetch_directory_async(
    issuer: str, client: httpx.AsyncClient, *, timeout: httpx.Timeout | float = DEFAULT_TIMEOUT
) -> tuple[IssuerDirectory, str]:
    """:func:`fetch_directory` with an :class:`httpx.AsyncClient`."""
    try:
        return await _get_directory_async(client, _directory_urls(None, issuer), timeout)
    except _HTTPX_ERRORS as e:
        raise IssuanceError(f"directory fetch failed: {e!r}", status=_BAD_GATEWAY) from e


# ----------------------------------------------------------------------- directory fetching


def _get_directory(
    client: httpx.Client, urls: list[str], timeout: httpx.Timeout | float
) -> tuple[IssuerDirectory, str]:
    for index, url in enumerate(urls):
        get = client.build_request("GET", url, headers=_DIRECTORY_HEADERS, timeout=timeout)
        with _send(client, get, True) as response:
            if not response.is_success and index + 1 < len(urls):
                continue
            _check_response(response, "issuer directory", None)
            body = read_bounded(response.iter_raw(), MAX_DIRECTORY_SIZE, response)
            return parse_directory(body), str(response.url)
    raise IssuanceError("no directory URL to try", status=_BAD_GATEWAY)  # pragma: no cover


async def _get_directory_async(
    client: httpx.AsyncClient, urls: list[str], timeout: httpx.Timeout | float
) -> tuple[IssuerDirectory, str]:
    for index, url in enumerate(urls):
        get = client.build_request("GET", url, headers=_DIRECTORY_HEADERS, timeout=timeout)
        async with _send_async(client, get, True) as response:
            if not response.is_success and index + 1 < len(urls):
                continue
            _check_response(response, "issuer directory", None)
            body = await _read_bounded_async(response.aiter_raw(), MAX_DIRECTORY_SIZE, response)
            return parse_directory(body), str(response.url)
    raise IssuanceError("no directory URL to try", status=_BAD_GATEWAY)  # pragma: no cover


@contextlib.contextmanager
def _send(client: httpx.Client, request: httpx.Request, follow: bool) -> Iterator[httpx.Response]:
    """The streamed response to ``request``, redirects followed (when ``follow``) without
    reading their bodies: httpx's own following reads each one whole, inflated, unbounded."""
    for _ in range(client.max_redirects + 1):
        response = client.send(request, stream=True, follow_redirects=False)
        try:
            if not follow or response.next_request is None:
                yield response
                return
            request = response.next_request
        finally:
            response.close()
    raise IssuanceError("issuer: too many redirects", status=_BAD_GATEWAY)


@contextlib.asynccontextmanager
async def _send_async(
    client: httpx.AsyncClient, request: httpx.Request, follow: bool
) -> AsyncIterator[httpx.Response]:
    for _ in range(client.max_redirects + 1):
        response = await client.send(request, stream=True, follow_redirects=False)
        try:
            if not follow or response.next_request is None:
                yield response
                return
            request = response.next_request
        finally:
            await response.aclose()
    raise IssuanceError("issuer: too many redirects", status=_BAD_GATEWAY)


# ------------------------------------------------------------------------- sans-IO helpers


def _directory_urls(challenge: TokenChallenge | None, issuer: str | None) -> list[str]:
    """Directory URLs to try, in order, for an issuer given as URL or ``host[:port]``."""
    if issuer is None:
        if challenge is None:  # pragma: no cover - callers always pass one of the two
            raise ValueError("no issuer given")
        issuer = challenge.issuer_name
    text = issuer if "://" in issuer else "https://" + issuer
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise IssuanceError(f"issuer URL {issuer!r} is not an http(s) URL", status=400)
    if parts.path.rstrip("/") in (DIRECTORY_PATH, LEGACY_DIRECTORY_PATH):
        return [text]
    origin = f"{parts.scheme}://{parts.netloc}"
    return [origin + DIRECTORY_PATH, origin + LEGACY_DIRECTORY_PATH]


def _default_directory_url(challenge: TokenChallenge) -> str:
    return f"https://{challenge.issuer_name}{DIRECTORY_PATH}"


def _request_url(directory: IssuerDirectory, directory_url: str) -> str:
    """issuer-request-uri, absolute or relative to the directory URL (RFC 9578 §4)."""
    url = urljoin(directory_url, directory.issuer_request_uri)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise IssuanceError(
            "issuer-request-uri does not resolve to an http(s) URL", status=_BAD_GATEWAY
        )
    return url


def _check_listed(directory: IssuerDirectory, key: PublishedKey, required: bool) -> None:
    if not required:
        return
    listed = directory.find(key.token_key_id)
    if listed is None or listed.token_type != key.token_type:
        raise IssuanceError(
            "the challenge's token-key is not in the issuer directory (stale key?)",
            status=_BAD_GATEWAY,
        )


def _post_headers() -> dict[str, str]:
    return {
        "Content-Type": TOKEN_REQUEST_MEDIA_TYPE,
        "Accept": TOKEN_RESPONSE_MEDIA_TYPE,
        "Accept-Encoding": "identity",
    }


def _check_response(response: httpx.Response, what: str, media_type: str | None) -> None:
    if response.status_code != httpx.codes.OK:
        raise IssuanceError(
            f"{what}: issuer answered HTTP {response.status_code}", status=_BAD_GATEWAY
        )
    # Bodies are read raw, so the size bound is a memory bound: a compressed answer (which
    # httpx would inflate first) is refused, not unpacked.
    coding = response.headers.get("content-encoding", "").strip().lower()
    if coding not in ("", "identity"):
        raise IssuanceError(
            f"{what}: Content-Encoding {coding[:32]!r}; only identity is accepted",
            status=_BAD_GATEWAY,
        )
    if media_type is not None:
        received = response.headers.get("content-type")
        if received is not None and received.split(";", 1)[0].strip().lower() != media_type:
            raise IssuanceError(
                f"{what}: unexpected Content-Type {received!r}", status=_BAD_GATEWAY
            )


def _check_declared_length(response: httpx.Response, limit: int) -> None:
    declared = response.headers.get("content-length", "")
    # ASCII digits only: isdigit() is true for "²" too, which int() refuses.
    if declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise IssuanceError(f"issuer answer is longer than {limit} bytes", status=_BAD_GATEWAY)


def read_bounded(chunks: Iterator[bytes], limit: int, response: httpx.Response) -> bytes:
    """The body, or :class:`IssuanceError` (502) as soon as it passes ``limit`` bytes."""
    _check_declared_length(response, limit)
    body = bytearray()
    for chunk in chunks:
        body += chunk
        if len(body) > limit:
            raise IssuanceError(f"issuer answer is longer than {limit} bytes", status=_BAD_GATEWAY)
    return bytes(body)


async def _read_bounded_async(
    chunks: AsyncIterator[bytes], limit: int, response: httpx.Response
) -> bytes:
    _check_declared_length(response, limit)
    body = bytearray()
    async for chunk in chunks:
        body += chunk
        if len(body) > limit:
            raise IssuanceError(f"issuer answer is longer than {limit} bytes", status=_BAD_GATEWAY)
    return bytes(body)


__all__ = [
    "DEFAULT_TIMEOUT",
    "fetch_directory",
    "fetch_directory_async",
    "fetch_token",
    "fetch_token_async",
    "issue_token_locally",
]
