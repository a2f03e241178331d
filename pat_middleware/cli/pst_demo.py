"""The Private State Token demo: an issuer and an origin on loopback, and pages to click
through in Chromium.

* The issuer (``pat-middleware pst-issuer``'s app) serves its key commitment, issuance,
  redemption and its redemption-record keys.
* The origin is a Starlette app protected by :class:`PrivateTokenMiddleware`, trusting the
  issuer (``pst_issuers``): ``GET /`` is a plain page linking the two steps; ``/issuer``
  establishes trust (``token-request``, then ``document.hasPrivateToken``); ``/redeemer``
  redeems a token (``token-redemption`` with a ``refreshPolicy``, then
  ``document.hasRedemptionRecord``) and sends the record to ``/protected``
  (``send-redemption-record``), which the policy lets through only with a valid record.

Chromium knows the issuer only from its key commitment, passed at launch with
``--additional-private-state-token-key-commitments`` (the demo prints the command line).
Imports Starlette and uvicorn: this is the command-line side.
"""

from __future__ import annotations

import html
import json
import secrets
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any, TextIO

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from ..integrations.asgi import PrivateTokenMiddleware
from ..issuer.pst import PSTIssuer
from ..issuer.pst_keys import PSTKeySet, new_key_set
from ..issuer.pst_server import (
    COMMITMENT_PATH,
    ISSUANCE_PATH,
    REDEMPTION_PATH,
    create_pst_issuer_app,
)
from ..policy import SCOPE_KEY, Policy, TokenInfo
from ..settings import Settings
from .serve import reserve_port, serve_asgi

CHROMIUM_FLAGS = "--additional-private-state-token-key-commitments"

_STYLE = (
    "body{font:16px/1.5 system-ui;max-width:44em;margin:2em auto}pre{background:#eee;padding:1em}"
)


def origin_settings(
    issuer_origin: str,
    origin_url: str,
    *,
    pat_issuers: list[Mapping[str, Any]] | None = None,
    secret: str | None = None,
) -> Settings:
    """The demo origin's settings: ``/protected`` needs a redemption record from
    ``issuer_origin`` (or a Private Access Token from ``pat_issuers``, when given)."""
    data: dict[str, Any] = {
        "secret": secret or secrets.token_urlsafe(32),
        "origin_info": ["localhost", "127.0.0.1"],
        "protect": ["/protected"],
        "pst_issuers": [{"origin": issuer_origin, "jwks": issuer_origin}],
        "pst_accepted_origins": [origin_url],
        "allow_per_process_replay": True,  # one demo process, challenges bound to it
    }
    if pat_issuers:
        data["issuers"] = pat_issuers
    return Settings.from_mapping(data)


def _page(title: str, body: str) -> HTMLResponse:
    return HTMLResponse(
        f"<!doctype html><meta charset=utf-8><title>{title}</title><style>{_STYLE}</style>"
        f"<h1>{title}</h1>{body}"
    )


def _script(issuer_origin: str, code: str) -> str:
    return f"<script>const issuer = {json.dumps(issuer_origin)};\n{code}</script>"


_ISSUE = """
async function establish() {
  const out = document.getElementById("out");
  try {
    const r = await fetch(issuer + "%s", {privateToken: {version: 1, operation: "token-request"}});
    out.textContent = "issuance: " + r.status + " " + await r.text();
  } catch (e) { out.textContent = "issuance failed: " + e; }
  document.getElementById("has").textContent = await document.hasPrivateToken(issuer);
}
document.hasPrivateToken(issuer).then(v => document.getElementById("has").textContent = v);
"""

_REDEEM = """
async function redeem() {
  const out = document.getElementById("out");
  const refreshPolicy = document.getElementById("refresh").value;
  try {
    const r = await fetch(issuer + "%s",
      {privateToken: {version: 1, operation: "token-redemption", refreshPolicy}});
    out.textContent = "redemption: " + r.status + " " + await r.text();
  } catch (e) { out.textContent = "redemption failed: " + e; }
  document.getElementById("has").textContent = await document.hasRedemptionRecord(issuer);
}
async function send() {
  const out = document.getElementById("out");
  const r = await fetch("/protected", {privateToken:
    {version: 1, operation: "send-redemption-record", issuers: [issuer]}});
  out.textContent = "/protected: " + r.status + " " + await r.text();
}
document.hasRedemptionRecord(issuer).then(v => document.getElementById("has").textContent = v);
"""


def create_pst_origin_app(issuer_origin: str, policy: Policy) -> PrivateTokenMiddleware:
    """The demo origin: plain pages, and ``/protected`` behind ``policy``."""
    shown = html.escape(issuer_origin)

    async def home(request: Request) -> Response:
        return _page(
            "Private State Tokens: origin",
            f"<p>Issuer: <code>{shown}</code> "
            f"(<a href='{shown}{COMMITMENT_PATH}'>key commitment</a>)</p>"
            "<ol><li><a href=/issuer>Establish trust</a>: the issuer issues tokens</li>"
            "<li><a href=/redeemer>Redeem</a> a token and send the record to "
            "<code>/protected</code></li></ol>",
        )

    async def issuer_page(request: Request) -> Response:
        return _page(
            "Establish trust",
            "<p>A real issuer would first decide that this user is trustworthy.</p>"
            "<button onclick=establish()>Ask for tokens</button>"
            "<p>document.hasPrivateToken: <b id=has>?</b></p><pre id=out></pre>"
            "<p><a href=/redeemer>Next: redeem</a></p>"
            + _script(issuer_origin, _ISSUE % ISSUANCE_PATH),
        )

    async def redeemer_page(request: Request) -> Response:
        return _page(
            "Redeem and send the record",
            "<label>refreshPolicy <select id=refresh><option>none<option>refresh</select>"
            "</label> <button onclick=redeem()>Redeem a token</button>"
            "<p>document.hasRedemptionRecord: <b id=has>?</b></p>"
            "<button onclick=send()>Send the record to /protected</button><pre id=out></pre>"
            + _script(issuer_origin, _REDEEM % REDEMPTION_PATH),
        )

    async def protected(request: Request) -> Response:
        proof = request.scope.get(SCOPE_KEY)
        if isinstance(proof, TokenInfo) and proof.signal == "redemption-record":
            return PlainTextResponse(f"welcome: a record from {proof.issuer}, label {proof.label}")
        return PlainTextResponse(f"welcome: {proof}")

    app = Starlette(
        routes=[
            Route("/", home),
            Route("/issuer", issuer_page),
            Route("/redeemer", redeemer_page),
            Route("/protected", protected),
        ]
    )
    return PrivateTokenMiddleware(app, policy=policy)


@dataclass(frozen=True)
class PSTDemo:
    issuer: PSTIssuer
    issuer_url: str  # where it listens
    issuer_origin: str  # the origin browsers know it by (localhost)
    origin_url: str
    policy: Policy

    def commitment(self) -> dict[str, Any]:
        return self.issuer.commitment().to_json()

    def chromium_flag(self) -> str:
        value = json.dumps({self.issuer_origin: self.commitment()}, separators=(",", ":"))
        return f"{CHROMIUM_FLAGS}={value}"


def _localhost(url: str) -> str:
    return url.replace("://127.0.0.1:", "://localhost:")


@contextmanager
def pst_demo(
    *,
    host: str = "127.0.0.1",
    issuer_port: int = 0,
    origin_port: int = 0,
    batch_size: int = 10,
    keys: PSTKeySet | None = None,
) -> Iterator[PSTDemo]:
    """Serve the issuer, then the origin (which fetches the issuer's record keys)."""
    with ExitStack() as stack:
        origin_socket, origin_port = reserve_port(host, origin_port)
        stack.callback(origin_socket.close)
        origin_url = _localhost(f"http://{host}:{origin_port}")
        issuer_socket, issuer_port = reserve_port(host, issuer_port)
        stack.callback(issuer_socket.close)
        issuer_origin = _localhost(f"http://{host}:{issuer_port}")
        issuer = PSTIssuer(
            keys or new_key_set(), issuer_origin=issuer_origin, batch_size=batch_size
        )
        issuer_app = create_pst_issuer_app(issuer, allow_origins=[origin_url])
        issuer_url = stack.enter_context(serve_asgi(issuer_app, sock=issuer_socket))
        policy = Policy(origin_settings(issuer_origin, origin_url))
        stack.callback(policy.close)
        app = create_pst_origin_app(issuer_origin, policy)
        stack.enter_context(serve_asgi(app, sock=origin_socket))
        yield PSTDemo(issuer, issuer_url, issuer_origin, origin_url, policy)


def run_pst_demo(out: TextIO, *, host: str, issuer_port: int, origin_port: int) -> int:
    """Serve the demo until interrupted, after printing how to open it in Chromium."""
    import time

    with pst_demo(host=host, issuer_port=issuer_port, origin_port=origin_port) as demo:
        flag = demo.chromium_flag().replace("'", "'\\''")
        out.write(
            f"PST issuer: {demo.issuer_origin}\n"
            f"origin:     {demo.origin_url}\n\n"
            "Open the origin in Chromium started with the issuer's key commitment:\n\n"
            f"  chromium --user-data-dir=$(mktemp -d) '{flag}' {demo.origin_url}/\n\n"
            "Ctrl-C stops the demo.\n"
        )
        out.flush()
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            return 0


__all__ = [
    "CHROMIUM_FLAGS",
    "PSTDemo",
    "create_pst_origin_app",
    "origin_settings",
    "pst_demo",
    "run_pst_demo",
]
