"""The Starlette example answers 401 with a valid challenge and 200 with a valid token."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from pat_middleware import IssuerKey, TokenChallenge, build_authorization, parse_www_authenticate

from ._servers import serve_asgi
from .conftest import sign_token

EXAMPLE = Path(__file__).parent.parent / "examples" / "starlette_app" / "app.py"


@pytest.fixture(scope="module")
def example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("starlette_example_app", EXAMPLE)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _answer(client: httpx.Client, response: httpx.Response, private: rsa.RSAPrivateKey) -> str:
    (params,) = parse_www_authenticate(response.headers["www-authenticate"])
    assert params.token_key is not None and params.max_age is not None
    key = IssuerKey.from_spki(params.token_key)
    challenge = TokenChallenge.from_bytes(params.challenge)
    return build_authorization(sign_token(private, key, challenge))


def test_example_flow(
    example: ModuleType,
    rsa_2048: rsa.RSAPrivateKey,
    issuer_key: IssuerKey,
) -> None:
    settings = example.load_example_settings("issuer.example", issuer_key.token_key)
    with serve_asgi(example.create_app(settings)) as base, httpx.Client(base_url=base) as client:
        assert client.get("/").status_code == 200
        first = client.get("/protected")
        assert first.status_code == 401
        ok = client.get("/protected", headers={"Authorization": _answer(client, first, rsa_2048)})
        assert ok.status_code == 200
        assert ok.json() == {"protected": True, "issuer": "issuer.example"}
        # Decorator: GET /submit is open, POST needs a token.
        client.cookies.clear()
        assert client.get("/submit").status_code == 200
        post = client.post("/submit")
        assert post.status_code == 401
        answered = client.post(
            "/submit", headers={"Authorization": _answer(client, post, rsa_2048)}
        )
        assert answered.status_code == 200
        assert answered.text == "POST accepted\n"
