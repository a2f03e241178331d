"""Starlette and FastAPI apps with protected endpoints, StaticFiles, root_path and a Mount.

Each builder takes pat-middleware settings (a mapping; ``protect = []`` for the control).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from pat_middleware.integrations.asgi import PrivateTokenMiddleware
from pat_middleware.settings import Settings

from . import FILES, MARK


async def secret(request: Request) -> Response:
    return PlainTextResponse(MARK)


async def cached(request: Request) -> Response:
    return PlainTextResponse(MARK, headers={"Cache-Control": "public, max-age=600"})


async def public(request: Request) -> Response:
    return PlainTextResponse("public")


def _middleware(settings: Mapping[str, Any]) -> list[Middleware]:
    return [Middleware(PrivateTokenMiddleware, settings=Settings.from_mapping(settings))]


def starlette_app(settings: Mapping[str, Any]) -> Starlette:
    """Routes as the WSGI apps have them, and StaticFiles mounted at /files."""
    return Starlette(
        routes=[
            Route("/members/", secret),
            Route("/café", secret),
            Route("/loose", secret),
            Route("/cached", cached),
            Route("/public", public),
            Route("/x", secret),
            Mount("/files", StaticFiles(directory=FILES)),
        ],
        middleware=_middleware(settings),
    )


def fastapi_app(settings: Mapping[str, Any], root_path: str = "/api") -> FastAPI:
    """FastAPI(root_path=...): its router serves /x at both /x and /api/x."""
    app = FastAPI(root_path=root_path)
    app.add_api_route("/x", secret)
    app.add_api_route("/public", public)
    app.add_middleware(PrivateTokenMiddleware, settings=Settings.from_mapping(settings))
    return app


def mounted_app(settings: Mapping[str, Any]) -> Starlette:
    """The middleware inside a Mount: it sees root_path "/sub" and the full path."""
    inner = Starlette(routes=[Route("/x", secret)], middleware=_middleware(settings))
    return Starlette(routes=[Route("/public", public), Mount("/sub", app=inner)])
