"""The apps the HTTP figures serve, and ``python -m benchmarks.apps``: one server process.

Both apps answer ``/open`` and ``/protected`` with a short plain-text 200. With the
middleware installed, the settings file in ``$PAT_BENCH_SETTINGS`` protects ``/protected``.
The reference servers put a layer in front that only calls the app, except for
``/static401``: there it answers the 401 stored in ``$PAT_BENCH_STATIC_401`` (a JSON file
with the status, headers and body of one of the middleware's challenges) as fixed bytes.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

BODY = "ok\n"
SETTINGS_ENV = "PAT_BENCH_SETTINGS"
STATIC_401_ENV = "PAT_BENCH_STATIC_401"
STATIC_401_PATH = "/static401"


def _static_401() -> tuple[int, list[tuple[str, str]], bytes]:
    """The stored challenge (status, headers with Content-Length, body), or an empty 401."""
    file = os.environ.get(STATIC_401_ENV)
    data: dict[str, Any] = (
        json.loads(Path(file).read_text()) if file else {"status": 401, "headers": []}
    )
    body = str(data.get("body", "")).encode("latin-1")
    headers = [(str(k), str(v)) for k, v in data["headers"]]
    return int(data["status"]), [*headers, ("Content-Length", str(len(body)))], body


class PassThrough:
    """An ASGI middleware that only calls the app: what one more layer costs, for reference
    (3a); and the stored 401 as fixed bytes on ``/static401`` (the floor for 3c)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        status, headers, self.body = _static_401()
        self.status = status
        self.headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == STATIC_401_PATH:
            start = {"type": "http.response.start", "status": self.status}
            await send({**start, "headers": list(self.headers)})
            await send({"type": "http.response.body", "body": self.body})
            return
        await self.app(scope, receive, send)


class WSGIPassThrough:
    """The same for WSGI."""

    def __init__(self, app: Any) -> None:
        self.app = app
        status, self.headers, self.body = _static_401()
        self.status = f"{status} Unauthorized"

    def __call__(self, environ: Any, start_response: Any) -> Any:
        if environ.get("PATH_INFO") == STATIC_401_PATH:
            start_response(self.status, list(self.headers))
            return [self.body]
        return self.app(environ, start_response)


def asgi_app(middleware: bool, reference: bool = False) -> Any:
    """A Starlette app, wrapped in PrivateTokenMiddleware when ``middleware``, or in a
    middleware that does nothing when ``reference``."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def endpoint(request: Request) -> PlainTextResponse:
        return PlainTextResponse(BODY)

    app: Any = Starlette(routes=[Route("/open", endpoint), Route("/protected", endpoint)])
    if middleware:
        from pat_middleware.integrations.asgi import PrivateTokenMiddleware

        app = PrivateTokenMiddleware(app, settings_file=os.environ[SETTINGS_ENV])
    elif reference:
        app = PassThrough(app)
    return app


def flask_app(middleware: str = "0") -> Any:
    """A Flask app, with the PrivateTokens extension when ``middleware`` is "1", or a WSGI
    middleware that does nothing when it is "reference"."""
    from flask import Flask

    app = Flask("bench")

    @app.get("/open")
    def open_() -> str:
        return BODY

    @app.get("/protected")
    def protected() -> str:
        return BODY

    if middleware == "1":
        from pat_middleware.integrations.flask import PrivateTokens

        app.config["PAT_SETTINGS_FILE"] = os.environ[SETTINGS_ENV]
        PrivateTokens(app)
    elif middleware == "reference":
        app.wsgi_app = WSGIPassThrough(app.wsgi_app)  # type: ignore[method-assign]
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description="serve a benchmark ASGI app under uvicorn")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--middleware", action="store_true")
    parser.add_argument("--reference", action="store_true", help="a do-nothing middleware")
    args = parser.parse_args()
    import uvicorn

    uvicorn.run(
        asgi_app(args.middleware, args.reference),
        host="127.0.0.1",
        port=args.port,
        workers=1,
        log_level="warning",
        access_log=False,
        lifespan="off",
    )


if __name__ == "__main__":
    main()
