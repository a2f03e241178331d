"""The apps the HTTP figures serve, and ``python -m benchmarks.apps``: one server process.

Both apps answer ``/open`` and ``/protected`` with a short plain-text 200. With the
middleware installed, the settings file in ``$PAT_BENCH_SETTINGS`` protects ``/protected``.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

BODY = "ok\n"
SETTINGS_ENV = "PAT_BENCH_SETTINGS"


class PassThrough:
    """An ASGI middleware that does nothing: what one more layer costs, for reference (3a)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


class WSGIPassThrough:
    """The same for WSGI."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, environ: Any, start_response: Any) -> Any:
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
        from pat_middleware.asgi import PrivateTokenMiddleware

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
        from pat_middleware.contrib.flask import PrivateTokens

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
