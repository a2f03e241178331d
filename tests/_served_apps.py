"""Apps that servers started as processes by the tests load (gunicorn, uvicorn): each reads
its settings from ``$PAT_SETTINGS`` and answers ``/open`` (public), ``/protected`` and
``/whoami`` (public: the serving process's pid)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from typing import Any

from pat_middleware.integrations.asgi import PrivateTokenMiddleware
from pat_middleware.integrations.wsgi import PrivateTokenWSGIMiddleware


def _plain(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    if environ.get("PATH_INFO") == "/whoami":
        body = json.dumps({"pid": os.getpid()}).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok\n"]


def wsgi() -> PrivateTokenWSGIMiddleware:
    """The WSGI middleware around a plain WSGI app."""
    return PrivateTokenWSGIMiddleware(_plain)


def flask() -> Any:
    """A Flask app with the PrivateTokens extension (settings from ``PAT_SETTINGS_FILE``)."""
    from flask import Flask, jsonify

    from pat_middleware.integrations.flask import PrivateTokens

    app = Flask(__name__)
    app.config["PAT_SETTINGS_FILE"] = os.environ["PAT_SETTINGS"]

    @app.get("/open")
    @app.get("/protected")
    def page() -> str:
        return "ok\n"

    @app.get("/whoami")
    def whoami() -> Any:
        return jsonify(pid=os.getpid())

    PrivateTokens(app)
    return app


async def _plain_asgi(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            kind = message["type"].rsplit(".", 1)[-1]
            await send({"type": f"lifespan.{kind}.complete"})
            if kind == "shutdown":
                return
    body = json.dumps({"pid": os.getpid()}).encode() if scope["path"] == "/whoami" else b"ok\n"
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


def asgi() -> PrivateTokenMiddleware:
    """The ASGI middleware around a plain ASGI app (an app factory: ``--factory`` for
    uvicorn, ``tests._served_apps:asgi()`` for gunicorn)."""
    return PrivateTokenMiddleware(_plain_asgi)
