"""A Flask app whose /members/ pages and /download need a Private Access Token.

Run it from the repository root (``pip install -e '.[flask,server]'`` first)::

    flask --app examples/flask_app/app.py run --port 5000

It reads ``pat.toml`` beside this file. The issuer comes from ``$PAT_ISSUER_NAME`` and
``$PAT_TOKEN_KEY`` when set, else from ``examples/issuer.token-key``. To try the whole flow
on loopback with the test issuer::

    pat-middleware keygen --out examples/issuer.pem | tail -n 1 > examples/issuer.token-key
    pat-middleware issuer --key examples/issuer.pem --name 127.0.0.1:8001 &
    flask --app examples/flask_app/app.py run --port 5000 &
    pat-middleware fetch http://127.0.0.1:5000/members/ --issuer http://127.0.0.1:8001

``/`` is public; ``/members/...`` is protected by the ``protect`` pattern in ``pat.toml``;
``/download`` by the ``@tokens.required`` decorator.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from flask import Flask, g

from pat_middleware.integrations.flask import PrivateTokens

HERE = Path(__file__).resolve().parent


def pat_settings() -> dict[str, Any]:
    """``pat.toml``, its first issuer replaced by ``$PAT_ISSUER_NAME``/``$PAT_TOKEN_KEY``."""
    with (HERE / "pat.toml").open("rb") as f:
        data = tomllib.load(f)
    issuer = dict(data["issuers"][0])
    if name := os.environ.get("PAT_ISSUER_NAME"):
        issuer["name"] = name
    if token_key := os.environ.get("PAT_TOKEN_KEY"):
        issuer.pop("token_key_file", None)
        issuer["token_key"] = token_key
    data["issuers"] = [issuer]
    return data


def create_app() -> Flask:
    """The example app; each settings key becomes Flask config ``PAT_<KEY>``."""
    app = Flask(__name__)
    app.config.from_mapping({f"PAT_{key.upper()}": v for key, v in pat_settings().items()})
    tokens = PrivateTokens(app)

    @app.get("/")
    def index() -> str:
        return "Public. /members/ and /download need a Private Access Token.\n"

    @app.get("/members/")
    def members() -> str:
        return f"Members only. You proved: {g.private_token}\n"

    @app.get("/download")
    @tokens.required
    def download() -> str:
        return "Here is your download.\n"

    return app


if __name__ == "__main__":
    create_app().run(host="127.0.0.1", port=5000)
