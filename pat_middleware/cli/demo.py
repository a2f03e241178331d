"""The demo origin, the challenge-following client, and the whole-flow demo.

Imports Starlette, httpx and uvicorn: this is the command-line side, not the core.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import httpx
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from ..core.headers import (
    WWW_AUTHENTICATE,
    build_authorization,
    parse_www_authenticate,
)
from ..core.keys import PublishedKey
from ..core.wire import TOKEN_TYPE_BLIND_RSA, TOKEN_TYPE_VOPRF, Token, TokenChallenge
from ..errors import DecodeError, IssuanceError
from ..integrations.asgi import PrivateTokenMiddleware
from ..issuer import Issuer, can_issue
from ..issuer.client import fetch_token
from ..issuer.server import create_issuer_app
from ..policy import SCOPE_KEY, Policy, TokenInfo
from ..settings import Settings
from ..tokens.blind_rsa import IssuerKey
from ..tokens.registry import default_registry


def origin_settings(
    issuer_name: str | None,
    token_key: str | None,
    *,
    directory: str | None = None,
    private_key_file: str | None = None,
    base: Mapping[str, Any] | None = None,
    secret: str | None = None,
    pst_issuers: Sequence[str] = (),
    own_origins: Sequence[str] = (),
    base_dir: Path | None = None,
    source: str = "origin settings",
) -> Settings:
    """Demo-origin settings: ``/protected`` needs a token; plain-HTTP cookies allowed.

    ``base`` (a settings mapping, e.g. from a TOML file) wins over the demo defaults; the
    issuer given on the command line (with a token-key, a directory URL, the issuer's
    type-1 private key file, or several of them) is added to its issuers. Without
    ``token_types`` in ``base``, the types those keys give are accepted. ``pst_issuers``
    (Private State Token issuer origins) are trusted for redemption records too, their
    keys fetched from them; records must name one of ``own_origins``. Relative paths in
    ``base`` are taken from ``base_dir`` (the settings file's directory; default: the
    working directory); ``source`` names where ``base`` came from in errors.
    """
    data: dict[str, Any] = {
        "protect": ["/protected"],
        "cookie_secure": False,
        "max_age": 60,
    }
    if base:
        data.update(base)
    if pst_issuers:
        data["pst_issuers"] = [
            *data.get("pst_issuers", []),
            *({"origin": origin, "jwks": origin} for origin in pst_issuers),
        ]
        data.setdefault("pst_accepted_origins", list(own_origins))
    if issuer_name is None:
        return _finish(data, secret, base_dir, source)
    issuers = list(data.get("issuers", []))
    entry = {"name": issuer_name}
    types: set[int] = set()
    if token_key is not None:
        entry["token_key"] = token_key
        types.add(TOKEN_TYPE_BLIND_RSA)
    if directory is not None:
        entry["directory"] = directory
        types.add(TOKEN_TYPE_BLIND_RSA)
    if private_key_file is not None:
        entry["private_key_file"] = private_key_file
        types.add(TOKEN_TYPE_VOPRF)
    issuers.insert(0, entry)
    data["issuers"] = issuers
    if types and "token_types" not in data:
        data["token_types"] = sorted(types)
    return _finish(data, secret, base_dir, source)


def _finish(
    data: dict[str, Any], secret: str | None, base_dir: Path | None, source: str
) -> Settings:
    if secret is not None:
        data["secret"] = secret
    elif not any(k in data for k in ("secret", "secret_env", "secret_file")):
        data["development"] = True
    return Settings.from_mapping(data, base_dir=base_dir, source=source)


def create_origin_app(policy: Policy) -> PrivateTokenMiddleware:
    """A tiny site: ``GET /`` is public, ``GET /protected`` needs a token, ``GET /whoami``
    (public) tells which worker process answered."""

    async def home(request: Request) -> Response:
        return HTMLResponse(
            "<!doctype html><meta charset=utf-8><title>pat-middleware demo origin</title>"
            "<p>public page: no token needed</p>"
            "<p><a href=/protected>/protected</a> needs a Private Access Token (or a "
            "Private State Token redemption record, when an issuer of those is trusted)</p>"
        )

    async def protected(request: Request) -> Response:
        info = request.scope.get(SCOPE_KEY)
        body: dict[str, Any] = {"message": "protected page: token accepted"}
        if isinstance(info, TokenInfo):
            body.update(
                issuer=info.issuer,
                token_type=info.token_type,
                token_key_id=info.token_key_id,
                via_session=info.via_session,
                signal=info.signal,
                label=info.label,
            )
        return JSONResponse(body)

    async def whoami(request: Request) -> Response:
        return JSONResponse({"pid": os.getpid()})

    app = Starlette(
        routes=[Route("/", home), Route("/protected", protected), Route("/whoami", whoami)],
        lifespan=lambda app: closing_store(policy),
    )
    return PrivateTokenMiddleware(app, policy=policy)


@contextlib.asynccontextmanager
async def closing_store(policy: Policy) -> AsyncIterator[None]:
    """A Starlette lifespan that closes the policy's store connections at shutdown, in the
    event loop that opened them (``RedisReplayStore.aclose``)."""
    yield
    aclose = getattr(policy.store, "aclose", None)
    if aclose is not None:
        await aclose()


# ------------------------------------------------------------------------------- client


@dataclass(frozen=True, slots=True)
class FetchResult:
    status: int
    token: bytes | None
    body: str


def pick_challenge(header: str) -> tuple[TokenChallenge, IssuerKey]:
    """The first type-2 challenge in a WWW-Authenticate value that we can answer."""
    challenge, key = choose_challenge(header, frozenset({TOKEN_TYPE_BLIND_RSA}))
    if not isinstance(key, IssuerKey):  # pragma: no cover - type-2 keys are IssuerKeys
        raise DecodeError("no usable type-2 PrivateToken challenge")
    return challenge, key


def choose_challenge(
    header: str, token_types: frozenset[int] | None = None
) -> tuple[TokenChallenge, PublishedKey]:
    """The first challenge in a WWW-Authenticate value that we can answer: a registered
    token type this client issues (2 or 1; only ``token_types`` when given), with a
    token-key of that type."""
    problems: list[str] = []
    registry = default_registry()
    for params in parse_www_authenticate(header):
        try:
            challenge = TokenChallenge.from_bytes(params.challenge)
        except DecodeError as e:
            problems.append(f"challenge: {e}")
            continue
        entry = registry.get(challenge.token_type)
        if entry is None or (token_types is not None and entry.value not in token_types):
            problems.append(f"token type {challenge.token_type} is not supported")
            continue
        if params.token_key is None:
            problems.append("challenge has no token-key")
            continue
        try:
            key = entry.load_public_key(params.token_key, allow_4096=True)
        except DecodeError as e:
            problems.append(f"token-key: {e}")
            continue
        if not can_issue(key):
            problems.append(f"token type {challenge.token_type} cannot be issued here")
            continue
        return challenge, key
    raise DecodeError("no usable PrivateToken challenge: " + ("; ".join(problems) or "none"))


#: How many redirects ``fetch`` follows from one request (httpx's own default).
MAX_REDIRECTS = 20


class TooManyRedirects(DecodeError):
    """The origin redirected more than :data:`MAX_REDIRECTS` times in a row."""


class IssuanceFailed(IssuanceError):
    """Issuance for a challenge failed; ``issuer`` is where it was asked (a URL, or the
    challenge's ``host[:port]``, https assumed)."""

    def __init__(self, message: str, issuer: str) -> None:
        super().__init__(message, status=502)
        self.issuer = issuer


def get_following(
    client: httpx.Client,
    url: str,
    headers: Mapping[str, str],
    say: Callable[[str], None],
) -> httpx.Response:
    """GET ``url``, following redirects (each hop said). ``headers`` go with the first
    request only: its token is spent by the origin that answered, so sending it again to
    where the origin redirects would be a replay (a pass carries on in its cookies)."""
    response = client.get(url, headers=dict(headers), follow_redirects=False)
    for _ in range(MAX_REDIRECTS):
        following = response.next_request
        if not response.is_redirect or following is None:
            return response
        say(f"  <- {response.status_code} -> {following.url}")
        response = client.get(following.url, follow_redirects=False)
    raise TooManyRedirects(f"too many redirects (more than {MAX_REDIRECTS}) from {url}")


def follow(
    client: httpx.Client,
    url: str,
    *,
    issuer_url: str | None = None,
    say: Callable[[str], None] = print,
    token: bytes | None = None,
    verbose: bool = False,
) -> FetchResult:
    """GET ``url``, following redirects; on a PrivateToken 401, get a token from the issuer
    and retry once where the 401 came from.

    ``token`` sends that token on the first request instead (to show a replay).
    ``verbose`` says the whole ``WWW-Authenticate`` and ``Authorization`` values (what
    ``pat-middleware verify`` and ``inspect`` take).
    """
    headers = {"Authorization": build_authorization(token)} if token else {}
    say(f"GET {url}" + (" (with a token)" if token else ""))
    response = get_following(client, url, headers, say)
    say(f"  <- {response.status_code}")
    header = response.headers.get(WWW_AUTHENTICATE)
    if response.status_code != 401 or token is not None or not header:
        return FetchResult(response.status_code, token, response.text)
    if verbose:
        say(f"  {WWW_AUTHENTICATE}: {header}")
    challenge, key = choose_challenge(header)
    say(
        f"  challenge: type={challenge.token_type} issuer={challenge.issuer_name} "
        f"origin_info={','.join(challenge.origin_info) or '(empty)'} "
        f"context={'32 bytes' if challenge.redemption_context else 'empty'} "
        f"key_id={key.token_key_id.hex()[:16]}..."
    )
    where = issuer_url or challenge.issuer_name
    say(f"  issuance: POST a blinded TokenRequest to the issuer at {where}")
    try:
        minted: Token = fetch_token(challenge, key, where, client)
    except IssuanceError as e:
        raise IssuanceFailed(str(e), where) from e
    raw = minted.to_bytes()
    authorization = build_authorization(raw)
    say(f"  got a {len(raw)}-byte token; retrying with Authorization: PrivateToken token=...")
    if verbose:
        say(f"  Authorization: {authorization}")
    challenged = str(response.url)
    if challenged != url:
        say(f"GET {challenged} (with the token)")
    retry = get_following(client, challenged, {"Authorization": authorization}, say)
    say(f"  <- {retry.status_code}")
    return FetchResult(retry.status_code, raw, retry.text)


# --------------------------------------------------------------------------------- demo


def run_demo(out: TextIO | None = None) -> int:
    """Issuer and origin on free loopback ports; the client runs the whole flow. Prints to
    ``out``, else to whatever ``sys.stdout`` is when it runs."""
    from .serve import serve_asgi

    def say(line: str) -> None:
        print(line, file=out or sys.stdout, flush=True)

    failures: list[str] = []

    def expect(what: str, ok: bool) -> None:
        say(f"  [{'ok' if ok else 'FAILED'}] {what}")
        if not ok:
            failures.append(what)

    say("pat-middleware demo: issuer -> origin -> client, all on 127.0.0.1")
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    # The issuer's name is its host:port, known only once it listens: serve a late-bound app.
    issuer_app = _LateApp()

    with serve_asgi(issuer_app) as issuer_url:
        issuer_name = issuer_url.removeprefix("http://")
        issuer = Issuer(issuer_name, private)
        issuer_app.app = create_issuer_app(issuer)
        key = issuer.preferred_key
        say(
            f"1. issuer  {issuer_url}  (name {issuer_name}, "
            f"key id {key.token_key_id.hex()[:16]}...)"
        )
        settings = origin_settings(issuer_name, key.token_key, secret=secrets.token_urlsafe(32))
        with serve_asgi(create_origin_app(Policy(settings))) as origin_url:
            say(f"2. origin  {origin_url}  (GET / public, GET /protected needs a token)")
            with httpx.Client(timeout=10.0) as client:
                say("3. public page")
                r = client.get(origin_url + "/")
                expect("GET / answers 200 without a token", r.status_code == 200)
                say("4. protected page: challenge, issuance, redemption")
                first = follow(client, origin_url + "/protected", issuer_url=issuer_url, say=say)
                expect("token accepted: 200", first.status == 200)
                if first.status == 200:
                    say("     " + first.body)
                say("5. verified session: no token needed for a while")
                again = client.get(origin_url + "/protected")
                expect(
                    "GET /protected with the session cookie only answers 200",
                    again.status_code == 200 and json.loads(again.text).get("via_session"),
                )
                say("6. replay: the same token again")
                replay = follow(client, origin_url + "/protected", token=first.token, say=say)
                expect("replayed token refused with 401", replay.status == 401)
                say("7. a fresh client without cookies gets a challenge")
                with httpx.Client(timeout=10.0) as other:
                    fresh = other.get(origin_url + "/protected")
                    expect(
                        "401 with WWW-Authenticate: PrivateToken",
                        fresh.status_code == 401
                        and "PrivateToken" in fresh.headers.get(WWW_AUTHENTICATE, ""),
                    )
    say("servers stopped.")
    if failures:
        say(f"demo FAILED: {len(failures)} step(s) did not behave")
        return 1
    say("demo passed: every step behaved as expected.")
    return 0


class _LateApp:
    """An ASGI app whose target is set after the server has bound its port."""

    def __init__(self) -> None:
        self.app: Callable[..., Awaitable[None]] | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self.app is None:  # lifespan before the issuer exists: nothing to start
            if scope["type"] == "lifespan":
                await receive()
                await send({"type": "lifespan.startup.complete"})
                await receive()
                await send({"type": "lifespan.shutdown.complete"})
            return
        await self.app(scope, receive, send)


__all__ = [
    "MAX_REDIRECTS",
    "FetchResult",
    "IssuanceFailed",
    "TooManyRedirects",
    "choose_challenge",
    "closing_store",
    "create_origin_app",
    "follow",
    "get_following",
    "origin_settings",
    "pick_challenge",
    "run_demo",
]
