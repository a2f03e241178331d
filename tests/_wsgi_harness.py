"""A test harness shared by the Flask and Django tests: a cookie-keeping browser, a wsgiref
server on loopback, answering a 401 and the origin's settings."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
from wsgiref.types import WSGIApplication

import httpx
from cryptography.hazmat.primitives.asymmetric import rsa

from pat_middleware import (
    IssuerKey,
    TokenChallenge,
    build_authorization,
    parse_www_authenticate,
)

from .conftest import sign_token

ISSUER_NAME = "issuer.example"
MAX_AGE = 60


@dataclass
class Reply:
    """One response: status, headers (names lower-cased, repeats kept) and body."""

    status: int
    headers: list[tuple[str, str]]  # names lower-cased, repeats kept
    body: bytes

    def header(self, name: str) -> str | None:
        values = self.all(name)
        return values[0] if values else None

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k == name]

    def cookie_names(self) -> list[str]:
        return [v.split("=", 1)[0].strip() for v in self.all("set-cookie")]


#: Sends ``(method, path, headers)`` somewhere and returns the :class:`Reply`.
Send = Callable[[str, str, dict[str, str]], Reply]


@dataclass
class Browser:
    """A client keeping its own cookie jar, so tests can copy, drop or tamper with cookies."""

    send: Send
    jar: dict[str, str] = field(default_factory=dict)

    def request(
        self,
        method: str,
        path: str,
        *,
        authorization: str | None = None,
        cookie: str | None = None,
        host: str | None = None,
    ) -> Reply:
        headers: dict[str, str] = {}
        if cookie is not None:
            headers["Cookie"] = cookie
        elif self.jar:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.jar.items())
        if authorization is not None:
            headers["Authorization"] = authorization
        if host is not None:
            headers["Host"] = host
        reply = self.send(method, path, headers)
        for value in reply.all("set-cookie"):
            name, _, rest = value.strip().partition("=")
            self.jar[name] = rest.split(";", 1)[0]
        return reply

    def get(self, path: str, **kwargs: Any) -> Reply:
        return self.request("GET", path, **kwargs)


def httpx_send(client: httpx.Client) -> Send:
    """A :data:`Send` through ``client``, ignoring its own cookie jar."""

    def send(method: str, path: str, headers: dict[str, str]) -> Reply:
        client.cookies.clear()  # the Browser's jar is the only one
        response = client.request(method, path, headers=headers)
        return Reply(
            response.status_code,
            [(k.lower(), v) for k, v in response.headers.multi_items()],
            response.content,
        )

    return send


class _QuietHandler(WSGIRequestHandler):
    """A request handler that logs nothing."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def serve_wsgi(app: WSGIApplication) -> Iterator[str]:
    """Serve ``app`` with wsgiref on a free loopback port; yields the base URL."""
    server: WSGIServer = make_server("127.0.0.1", 0, app, handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(5)
        server.server_close()


def answer(reply: Reply, private_key: rsa.RSAPrivateKey, key: IssuerKey) -> str:
    """The Authorization value a client sends for the first challenge of ``reply``."""
    header = reply.header("www-authenticate")
    assert header is not None, reply
    params = parse_www_authenticate(header)
    challenge = TokenChallenge.from_bytes(params[0].challenge)
    return build_authorization(sign_token(private_key, key, challenge))


def pat_settings(key: IssuerKey, *, secret: str, **extra: Any) -> dict[str, Any]:
    """Settings trusting ``key`` from :data:`ISSUER_NAME` and protecting ``/protected/*``;
    ``extra`` adds to or overrides them."""
    return {
        "issuers": [{"name": ISSUER_NAME, "token_key": key.token_key}],
        "secret": secret,
        "protect": ["/protected/*"],
        "cookie_secure": False,
        "max_age": MAX_AGE,
        **extra,
    }


def assert_oversized_headers_refused(
    browser: Browser, private_key: rsa.RSAPrivateKey, key: IssuerKey, path: str
) -> None:
    """On a verified session, a 20 KB Authorization is refused (never read as "no token" and
    passed on the session), and a Cookie header over 16 KiB is ignored (a new session)."""
    challenged = browser.get(path)
    assert browser.get(path, authorization=answer(challenged, private_key, key)).status == 200
    assert browser.get(path).status == 200  # the verified session
    reply = browser.get(path, authorization="PrivateToken token=" + "A" * 20_000)
    assert reply.status == 401 and reply.header("www-authenticate")
    ours = "; ".join(f"{k}={v}" for k, v in browser.jar.items())
    reply = browser.get(path, cookie=f"{ours}; big={'A' * 17_000}")
    assert reply.status == 401 and reply.header("www-authenticate")
