"""The issuer over HTTP: a Starlette app serving the directory and token requests.

Routes (RFC 9578 §4, §6):

* ``GET /.well-known/private-token-issuer-directory`` and the legacy
  ``GET /.well-known/token-issuer-directory``: the directory JSON with ``Cache-Control``
  and ``ETag`` (``If-None-Match`` gets a 304). A :class:`RotatingIssuer`'s directory
  changes at each rotation, with a new ETag; its max-age never runs past the next change.
* ``POST <path of issuer-request-uri>``: ``application/private-token-request`` in,
  ``application/private-token-response`` out.

Bad requests get a 4xx with a one-line plain-text reason: 415 for a wrong content type, 413
for a body over the limit, 400 for one too short to read, 422 for what RFC 9578 §6.2 lists.
This module is the only one in :mod:`pat_middleware.issuer` that imports Starlette.
"""

from __future__ import annotations

import hashlib
import math
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from ..errors import ConfigurationError, IssuanceError
from .protocol import (
    DIRECTORY_PATH,
    ISSUER_DIRECTORY_MEDIA_TYPE,
    LEGACY_DIRECTORY_PATH,
    TOKEN_REQUEST_MEDIA_TYPE,
    TOKEN_RESPONSE_MEDIA_TYPE,
    Issuer,
)
from .rotation import RotatingIssuer

#: The directory's ``Cache-Control: max-age`` unless told otherwise (the RFC example value).
DEFAULT_DIRECTORY_MAX_AGE = 86400
#: Default bound on a token request body. Valid requests are 259 bytes (515 with a 4096-bit
#: key); bodies of a wrong size under the bound get the RFC's 422, larger ones 413.
DEFAULT_MAX_BODY_SIZE = 1024


def _media_type(value: str | None) -> str:
    """The bare, lower-cased media type of a Content-Type value (parameters dropped)."""
    if value is None:
        return ""
    return value.split(";", 1)[0].strip().lower()


def _etag_matches(if_none_match: str, etag: str) -> bool:
    candidates = {part.strip().removeprefix("W/") for part in if_none_match.split(",")}
    return "*" in candidates or etag in candidates


def _etag_of(directory: bytes) -> str:
    return '"' + hashlib.sha256(directory).hexdigest()[:32] + '"'


def create_issuer_app(
    issuer: Issuer | RotatingIssuer,
    *,
    directory_max_age: int = DEFAULT_DIRECTORY_MAX_AGE,
    max_body_size: int | None = None,
) -> Starlette:
    """A Starlette app serving ``issuer`` (fixed keys, or keys rotating on a schedule).

    ``max_body_size`` bounds a token request body (default 1 KiB, and never less than the
    longest valid request for the issuer's keys); larger bodies get 413 unread.
    """

    def serving() -> Issuer:
        return issuer.current() if isinstance(issuer, RotatingIssuer) else issuer

    first = serving()
    limit = (
        max(DEFAULT_MAX_BODY_SIZE, first.max_request_length)
        if max_body_size is None
        else max_body_size
    )
    if limit < first.max_request_length:
        raise ConfigurationError(
            "max_body_size", f"must be at least {first.max_request_length} bytes"
        )
    if directory_max_age < 0:
        raise ConfigurationError("directory_max_age", "must not be negative")
    request_path = urlsplit(first.request_uri).path

    def directory_and_headers() -> tuple[bytes, dict[str, str]]:
        """The directory and its caching headers, from one reading of the clock (a rotation
        between two readings would send the old keys with the new period's max-age)."""
        max_age = directory_max_age
        if isinstance(issuer, RotatingIssuer):
            now = issuer.clock()
            directory = issuer.issuer_at(now).directory_bytes()
            max_age = min(max_age, math.ceil(issuer.next_change(now) - now))
        else:
            directory = issuer.directory_bytes()
        return directory, {"Cache-Control": f"max-age={max_age}", "ETag": _etag_of(directory)}

    async def directory_endpoint(request: Request) -> Response:
        # A rotating issuer may generate a key here (tens of ms): not on the event loop.
        directory, headers = await run_in_threadpool(directory_and_headers)
        if_none_match = request.headers.get("if-none-match")
        if if_none_match is not None and _etag_matches(if_none_match, headers["ETag"]):
            return Response(status_code=304, headers=headers)
        return Response(directory, media_type=ISSUER_DIRECTORY_MEDIA_TYPE, headers=headers)

    async def token_request_endpoint(request: Request) -> Response:
        if _media_type(request.headers.get("content-type")) != TOKEN_REQUEST_MEDIA_TYPE:
            return _error(415, f"Content-Type must be {TOKEN_REQUEST_MEDIA_TYPE}")
        declared = request.headers.get("content-length")
        if declared is not None:
            if not (declared.isascii() and declared.isdigit()):  # isdigit() takes "²"
                return _error(400, "invalid Content-Length")
            if int(declared) > limit:
                return _error(413, f"token request is larger than {limit} bytes")
        body = bytearray()
        try:
            async for chunk in request.stream():
                body += chunk
                if len(body) > limit:
                    return _error(413, f"token request is larger than {limit} bytes")
        except ClientDisconnect:
            return _error(400, "client disconnected")
        try:
            # Blind signing is CPU work of a few milliseconds; keep it off the event loop.
            # (Choosing the issuer may generate a rotating key: in the thread too.)
            answer = await run_in_threadpool(lambda: serving().issue(bytes(body)))
        except IssuanceError as e:
            return _error(e.status, str(e))
        return Response(
            answer, media_type=TOKEN_RESPONSE_MEDIA_TYPE, headers={"Cache-Control": "no-store"}
        )

    routes = [
        Route(DIRECTORY_PATH, directory_endpoint, methods=["GET"]),
        Route(LEGACY_DIRECTORY_PATH, directory_endpoint, methods=["GET"]),
        Route(request_path, token_request_endpoint, methods=["POST"]),
    ]
    return Starlette(routes=routes)


def _error(status: int, message: str) -> Response:
    return PlainTextResponse(message, status_code=status, headers={"Cache-Control": "no-store"})


__all__ = ["DEFAULT_DIRECTORY_MAX_AGE", "DEFAULT_MAX_BODY_SIZE", "create_issuer_app"]
