"""Apps that read their settings file from ``$PAT_TEST_SETTINGS_FILE`` the way each
framework's documentation installs pat-middleware, for the start-up tests
(tests/test_startup.py): started as real server processes with bad settings, they must
exit non-zero with one line naming the setting."""

from __future__ import annotations

import os
from typing import Any

SETTINGS_FILE_ENV = "PAT_TEST_SETTINGS_FILE"


def _file() -> str:
    return os.environ[SETTINGS_FILE_ENV]


def _fastapi() -> Any:
    from fastapi import FastAPI

    from pat_middleware.integrations.asgi import PrivateTokenMiddleware

    api = FastAPI()

    @api.get("/public")
    async def public() -> dict[str, str]:
        return {"ok": "public"}

    api.add_middleware(PrivateTokenMiddleware, settings_file=_file())
    return api


def _starlette() -> Any:
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse, Response
    from starlette.routing import Route

    from pat_middleware.integrations.asgi import PrivateTokenMiddleware

    async def public(request: Request) -> Response:
        return PlainTextResponse("public")

    return Starlette(
        routes=[Route("/public", public)],
        middleware=[Middleware(PrivateTokenMiddleware, settings_file=_file())],
    )


def create_flask_app() -> Any:
    """The Flask application factory (``flask --app tests.apps.startup:create_flask_app``)."""
    from flask import Flask

    from pat_middleware.integrations.flask import PrivateTokens

    app = Flask(__name__)
    app.config["PAT_SETTINGS_FILE"] = _file()
    tokens = PrivateTokens()
    tokens.init_app(app)

    @app.get("/public")
    def public() -> str:
        return "public"

    return app


def __getattr__(name: str) -> Any:
    """``fastapi_app`` and ``starlette_app`` are built when the server asks for them."""
    if name == "fastapi_app":
        return _fastapi()
    if name == "starlette_app":
        return _starlette()
    raise AttributeError(name)
