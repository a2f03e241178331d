"""Starlette example: ``/`` is public, ``/protected`` and ``/api/*`` need a token (settings),
``/submit`` needs one for POST only (decorator).

Run it from the repository root (``pip install -e '.[server]'`` first)::

    python3 examples/starlette_app/app.py

It reads ``pat.toml`` beside this file. The issuer comes from ``$PAT_ISSUER_NAME`` and
``$PAT_TOKEN_KEY`` when set, else from ``examples/issuer.token-key``. To try the whole flow
on loopback with the test issuer::

    pat-middleware keygen --out examples/issuer.pem | tail -n 1 > examples/issuer.token-key
    pat-middleware issuer --key examples/issuer.pem --name 127.0.0.1:8001 &
    python3 examples/starlette_app/app.py &
    pat-middleware fetch http://127.0.0.1:8000/protected --issuer http://127.0.0.1:8001
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from pat_middleware.integrations.asgi import PrivateTokenMiddleware
from pat_middleware.integrations.starlette import require_private_token
from pat_middleware.policy import SCOPE_KEY, TokenInfo
from pat_middleware.settings import Settings

HERE = Path(__file__).parent


def load_example_settings(issuer_name: str | None = None, token_key: str | None = None) -> Settings:
    """pat.toml, with the issuer replaced by the arguments or PAT_ISSUER_NAME / PAT_TOKEN_KEY."""
    data: dict[str, Any] = tomllib.loads((HERE / "pat.toml").read_text())
    name = issuer_name or os.environ.get("PAT_ISSUER_NAME")
    key = token_key or os.environ.get("PAT_TOKEN_KEY")
    if name and key:
        data["issuers"] = [{"name": name, "token_key": key}]
    return Settings.from_mapping(data, base_dir=HERE, source=str(HERE / "pat.toml"))


async def home(request: Request) -> Response:
    return PlainTextResponse("public\n")


async def protected(request: Request) -> Response:
    info = request.scope.get(SCOPE_KEY)
    issuer = info.issuer if isinstance(info, TokenInfo) else None
    return JSONResponse({"protected": True, "issuer": issuer})


@require_private_token(methods={"POST"})
async def submit(request: Request) -> Response:
    return PlainTextResponse(f"{request.method} accepted\n")


def create_app(settings: Settings) -> PrivateTokenMiddleware:
    app = Starlette(
        routes=[
            Route("/", home),
            Route("/protected", protected),
            Route("/api/items", protected),
            Route("/submit", submit, methods=["GET", "POST"]),
        ]
    )
    return PrivateTokenMiddleware(app, settings=settings)


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(create_app(load_example_settings()), host="127.0.0.1", port=8000)
