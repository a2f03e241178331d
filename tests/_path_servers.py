"""Real servers for the path-spelling attacks in test_security.py.

One gunicorn process serves every Flask variant (chosen by the Host header: see
tests/apps/flask_paths.py), two serve Django (protected and control), and uvicorn serves
the Starlette and FastAPI apps in threads. Every protected server has a control twin with
no path rules, which shows that each spelling really reaches the protected view: a test
that asks "is it refused?" is only meaningful where the control answers the secret.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pat_middleware.tokens.blind_rsa import IssuerKey

from ._servers import RawResponse, gunicorn_process, raw_request, serve_asgi
from .apps import FILE_MARK, MARK, RULES, SETTINGS_ENV
from .apps.starlette_paths import fastapi_app, mounted_app, starlette_app

ROOT = Path(__file__).resolve().parent.parent
ISSUER_NAME = "issuer.example"
SECRET = "path-tests-secret-0123456789-abcdefghijkl"

#: Adapter name -> how it is served. Flask variants share one gunicorn (Host picks them).
WSGI_ADAPTERS = ("flask-extension", "flask-middleware", "django")
ADAPTERS = (*WSGI_ADAPTERS, "starlette")


def path_settings(key: IssuerKey, protect: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "issuers": [{"name": ISSUER_NAME, "token_key": key.token_key}],
        "secret": SECRET,
        "cookie_secure": False,  # the servers speak plain http
        "origin_info": ["localhost"],
        "protect": protect,
        **extra,
    }


@dataclass
class Target:
    """Where one adapter is served: address and Host header, protected and control."""

    address: tuple[str, int]
    host: str
    control_address: tuple[str, int]
    control_host: str

    def get(self, target: str, **kwargs: Any) -> RawResponse:
        return raw_request(self.address, target, host=self.host, **kwargs)

    def control(self, target: str, **kwargs: Any) -> RawResponse:
        return raw_request(self.control_address, target, host=self.control_host, **kwargs)


def leaks(response: RawResponse) -> bool:
    """The protected content came back: a bypass (or, on the control, a real route)."""
    return response.status == 200 and (
        MARK.encode() in response.body or FILE_MARK.encode() in response.body
    )


@dataclass
class PathServers:
    """Servers started on first use and stopped with the module."""

    key: IssuerKey
    stack: ExitStack = field(default_factory=ExitStack)
    started: dict[str, Target] = field(default_factory=dict)

    def _env(self, settings: dict[str, Any]) -> dict[str, str]:
        return {
            **os.environ,
            SETTINGS_ENV: json.dumps(settings),
            "PYTHONPATH": str(ROOT),
            "DJANGO_SETTINGS_MODULE": "tests.apps.django_paths.settings",
        }

    def _gunicorn(self, app: str, protect: list[str], args: tuple[str, ...] = ()) -> Any:
        return self.stack.enter_context(
            gunicorn_process(app, env=self._env(path_settings(self.key, protect)), args=args)
        )

    def _asgi(self, app: Any, **kwargs: Any) -> tuple[str, int]:
        url = self.stack.enter_context(serve_asgi(app, http="h11", **kwargs))
        return ("127.0.0.1", int(url.rsplit(":", 1)[1]))

    def adapter(self, name: str) -> Target:
        if name in self.started:
            return self.started[name]
        if name.startswith("flask-"):
            if "flask" not in self.started:
                addr = self._gunicorn("tests.apps.flask_paths:create_dispatch()", RULES)
                self.started["flask"] = Target(addr, "", addr, "none.test")
            flask = self.started["flask"]
            variant = name.removeprefix("flask-")
            target = Target(flask.address, f"{variant}.test", flask.address, "none.test")
        elif name == "django":
            app = "tests.apps.django_paths.wsgi:application"
            protected = self._gunicorn(app, RULES)
            control = self._gunicorn(app, [])
            target = Target(protected, "localhost", control, "localhost")
        elif name == "starlette":
            protected = self._asgi(starlette_app(path_settings(self.key, RULES)))
            control = self._asgi(starlette_app(path_settings(self.key, [])))
            target = Target(protected, "localhost", control, "localhost")
        else:
            raise KeyError(name)
        self.started[name] = target
        return target

    def proxyfix(self) -> Target:
        """The Flask extension behind ProxyFix(x_prefix=1)."""
        self.adapter("flask-extension")
        flask = self.started["flask"]
        return Target(flask.address, "proxyfix.test", flask.address, "none.test")

    def asgi_variant(self, kind: str, protect: list[str]) -> Target:
        """FastAPI(root_path="/api"), uvicorn --root-path /api, or a middleware in a Mount."""
        name = f"{kind}:{','.join(protect)}"
        if name not in self.started:
            builders: dict[str, Callable[[dict[str, Any]], Any]] = {
                "fastapi-root-path": fastapi_app,
                "uvicorn-root-path": starlette_app,
                "mount": mounted_app,
            }
            extra = {"root_path": "/api"} if kind == "uvicorn-root-path" else {}
            with warnings.catch_warnings():  # FastAPI deprecates root_path= (still honoured)
                warnings.simplefilter("ignore")
                protected = builders[kind](path_settings(self.key, protect))
                control = builders[kind](path_settings(self.key, []))
            self.started[name] = Target(
                self._asgi(protected, **extra), "localhost", self._asgi(control, **extra), "x"
            )
        return self.started[name]

    def close(self) -> None:
        self.stack.close()


def path_servers(key: IssuerKey) -> Iterator[PathServers]:
    servers = PathServers(key)
    try:
        yield servers
    finally:
        servers.close()
