"""Token type 1 against an implementation we did not write: @cloudflare/privacypass-ts 0.8.1
(pinned in benchmarks/node), through its public API (benchmarks/node/type1_interop.mjs).

Both directions: its client gets a token from our issuer over HTTP (its Finalize verifies our
DLEQ proof) and redeems it at our origin; its issuer's tokens are accepted by our origin path
(Policy.evaluate), and its Origin.verify accepts our issuer's tokens. Skipped, with the
reason, only when node or npm is missing; npm ci runs first when node_modules is missing.
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from pat_middleware.cli.demo import create_origin_app
from pat_middleware.core.codec import b64_decode, b64url_encode
from pat_middleware.core.keyring import KeyRing, TrustedKey
from pat_middleware.core.verify import verify_token
from pat_middleware.core.wire import TokenChallenge
from pat_middleware.errors import Reason
from pat_middleware.issuer import Issuer, issue_token_locally
from pat_middleware.issuer.server import create_issuer_app
from pat_middleware.issuer.voprf import VOPRFTokenRequest
from pat_middleware.policy import Outcome, Policy
from pat_middleware.settings import Settings
from pat_middleware.tokens.voprf import VOPRFTokenKey

from ._origin import ISSUER, SECRET, Browser, FakeClock, challenges_of
from ._servers import serve_asgi

NODE_DIR = Path(__file__).resolve().parent.parent / "benchmarks" / "node"
SCRIPT = NODE_DIR / "type1_interop.mjs"
PACKAGE = NODE_DIR / "node_modules" / "@cloudflare" / "privacypass-ts" / "package.json"


@pytest.fixture(scope="module")
def node() -> str:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        missing = "node" if node is None else "npm"
        pytest.skip(f"interop with privacypass-ts needs node and npm ({missing} not found)")
    if not PACKAGE.exists():
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=NODE_DIR,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert done.returncode == 0, f"npm ci failed in {NODE_DIR}: {done.stderr[-800:]}"
    assert json.loads(PACKAGE.read_text())["version"] == "0.8.1"
    return node


def _run(node: str, *args: str, data: Any = None) -> dict[str, Any]:
    done = subprocess.run(
        [node, str(SCRIPT), *args],
        cwd=NODE_DIR,
        input=None if data is None else json.dumps(data),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _scalar(key: VOPRFTokenKey) -> bytes:
    return key.secret_key.private_key.private_numbers().private_value.to_bytes(48, "big")


@pytest.fixture(scope="module")
def p384() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP384R1())


@pytest.fixture(scope="module")
def servers(
    p384: ec.EllipticCurvePrivateKey, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str, VOPRFTokenKey]]:
    """Our issuer and our origin (per-session contexts), on loopback, sharing a type-1 key."""
    key = VOPRFTokenKey.from_private_key(p384)
    key_file = tmp_path_factory.mktemp("interop") / "issuer.pem"
    key_file.write_bytes(key.private_pem())
    with serve_asgi(create_issuer_app(Issuer(ISSUER, p384))) as issuer_url:
        settings = Settings.from_mapping(
            {
                "issuers": [{"name": ISSUER, "private_key_file": str(key_file)}],
                "token_types": [1],
                "secret": SECRET,
                "protect": ["/protected"],
                "cookie_secure": False,
            }
        )
        with serve_asgi(create_origin_app(Policy(settings))) as origin_url:
            yield issuer_url, origin_url, key


def test_their_client_with_our_issuer_and_our_origin_over_http(
    node: str, servers: tuple[str, str, VOPRFTokenKey]
) -> None:
    issuer_url, origin_url, key = servers
    result = _run(node, "client", origin_url + "/protected", issuer_url + "/token-request")
    assert result["first_status"] == 401
    assert b64_decode(result["token_key"]) == key.published  # parsed from our header
    request = VOPRFTokenRequest.from_bytes(b64_decode(result["token_request"]))
    assert request.truncated_token_key_id == key.token_key_id[-1]
    token = b64_decode(result["token"])
    assert len(token) == 146 and token[:2] == b"\x00\x01" and token[66:98] == key.token_key_id
    assert result["status"] == 200, result["body"]
    body = json.loads(result["body"])
    assert (body["token_type"], body["issuer"]) == (1, ISSUER)
    assert result["replay_status"] == 401  # the same token again: refused as replayed


def test_their_issuer_s_tokens_pass_our_origin(node: str, tmp_path: Path) -> None:
    generated = _run(node, "keygen")
    key = VOPRFTokenKey.from_scalar(b64_decode(generated["private_key"]))
    assert key.published == b64_decode(generated["public_key"])  # the same 49-byte pkI
    (tmp_path / "k.pem").write_bytes(key.private_pem())
    settings = Settings.from_mapping(
        {
            "issuers": [{"name": ISSUER, "private_key_file": str(tmp_path / "k.pem")}],
            "token_types": [1],
            "secret": SECRET,
            "protect": ["/protected"],
        }
    )
    policy = Policy(settings, clock=FakeClock(), refresh_in_background=False)
    browsers = [Browser(policy) for _ in range(3)]
    challenges = [challenges_of(b.challenge())[0] for b in browsers]
    minted = _run(
        node,
        "issue",
        data={
            **generated,
            "issuer_name": ISSUER,
            "challenges": [b64url_encode(c.to_bytes()) for c in challenges],
        },
    )
    for browser, challenge, token_text, authorization in zip(
        browsers, challenges, minted["tokens"], minted["authorizations"], strict=True
    ):
        token = b64_decode(token_text)
        ring = KeyRing([TrustedKey(ISSUER, key)])
        assert verify_token(token, keys=ring, challenges=[challenge]).token_type == 1
        decision = browser.get(authorization=authorization)  # their header, our parser
        assert decision.outcome is Outcome.PASS, decision
        assert browser.get(token=token).reason is Reason.REPLAYED


def test_their_origin_verifies_our_issuer_s_tokens(
    node: str, p384: ec.EllipticCurvePrivateKey
) -> None:
    issuer = Issuer(ISSUER, p384)
    key = VOPRFTokenKey.from_private_key(p384)
    challenge = TokenChallenge(1, ISSUER, secrets.token_bytes(32), ("origin.example",))
    tokens = [issue_token_locally(issuer, challenge).to_bytes() for _ in range(3)]
    forged = tokens[0][:-1] + bytes([tokens[0][-1] ^ 1])
    result = _run(
        node,
        "verify",
        data={
            "private_key": b64url_encode(_scalar(key)),
            "tokens": [b64url_encode(t) for t in [*tokens, forged]],
        },
    )
    assert result["valid"] == [True, True, True, False]
