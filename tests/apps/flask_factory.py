"""A Flask app in the application-factory form, as docs/frameworks/flask.md shows it: the
extension made at import, ``init_app`` in the factory, a protected blueprint, a decorated
view. Settings come from ``$PAT_TEST_SETTINGS`` (JSON) for gunicorn (``create_app()``)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, g

from pat_middleware.integrations.flask import PrivateTokens

from . import MARK, settings_from_env

tokens = PrivateTokens()
members = Blueprint("members", __name__, url_prefix="/members")
tokens.protect_blueprint(members)


def _describe() -> str:
    token = g.private_token
    signal = token.signal if token is not None else None
    return f"{MARK} signal={signal}"


@members.get("/")
def index() -> str:
    return _describe()


@members.route("/form", methods=["GET", "POST"])
def form() -> str:
    return _describe()


def create_app(settings: dict[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    values = settings if settings is not None else settings_from_env()
    app.config.update({f"PAT_{k.upper()}": v for k, v in values.items()})
    tokens.init_app(app)
    app.register_blueprint(members)

    @app.get("/public")
    def public() -> str:
        return "public"

    @app.get("/download")
    @tokens.required(accept=["private-token"])
    def download() -> str:
        return _describe()

    return app
