"""A Flask app with protected views, a static folder and send_from_directory.

``create_app("extension")`` protects it with the Flask extension, ``"middleware"`` with the
WSGI middleware around ``app.wsgi_app``, ``"proxyfix"`` with the extension behind
Werkzeug's ``ProxyFix(x_prefix=1)``, ``"none"`` not at all (the control).
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, send_from_directory
from werkzeug.middleware.proxy_fix import ProxyFix

from pat_middleware.integrations.flask import PrivateTokens
from pat_middleware.integrations.wsgi import PrivateTokenWSGIMiddleware
from pat_middleware.settings import Settings

from . import FILES, MARK, settings_from_env


def create_app(protection: str = "extension") -> Any:
    app = Flask(__name__, static_folder=str(FILES), static_url_path="/files")

    @app.get("/members/")
    def members() -> str:
        return MARK

    @app.get("/loose", strict_slashes=False)
    def loose() -> str:
        return MARK

    @app.get("/café")
    def cafe() -> str:
        return MARK

    @app.get("/cached")
    def cached() -> Response:
        return Response(MARK, headers={"Cache-Control": "public, max-age=600"})

    @app.get("/dl/<path:name>")
    def download(name: str) -> Response:
        return send_from_directory(FILES, name)

    @app.get("/public")
    def public() -> str:
        return "public"

    settings = settings_from_env()
    if protection == "none":
        return app
    if protection in ("extension", "proxyfix"):
        app.config.from_mapping({f"PAT_{k.upper()}": v for k, v in settings.items()})
        PrivateTokens(app)
        if protection == "proxyfix":
            app.wsgi_app = ProxyFix(app.wsgi_app, x_prefix=1)  # type: ignore[method-assign]
    elif protection == "middleware":
        app.wsgi_app = PrivateTokenWSGIMiddleware(  # type: ignore[method-assign]
            app.wsgi_app, settings=Settings.from_mapping(settings)
        )
    return app


#: Host name prefix -> the protection of the Flask app answering requests for it.
VARIANTS = ("extension", "middleware", "proxyfix", "none")


def create_dispatch() -> Any:
    """Every variant in one process, chosen by the Host header's first label
    (``extension.test``, ``middleware.test``, ``proxyfix.test``, ``none.test``)."""
    apps = {name: create_app(name) for name in VARIANTS}

    def dispatch(environ: dict[str, Any], start_response: Any) -> Any:
        label = str(environ.get("HTTP_HOST", "")).partition(".")[0]
        return apps.get(label, apps["none"])(environ, start_response)

    return dispatch
