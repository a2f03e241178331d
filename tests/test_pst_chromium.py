"""Private State Tokens end to end with a real Chromium (headless, the Debian package).

Our PST issuer and a small origin run under uvicorn on loopback (``localhost`` counts as
potentially trustworthy, so both are secure contexts); Chromium gets the issuer's key
commitment with ``--additional-private-state-token-key-commitments`` (pst-notes §1) and is
driven over the DevTools protocol (tests/_chromium.py). The page is served by a real server:
a page served through DevTools interception could not reach a loopback issuer (pst-notes §5).

Flow: issuance -> ``document.hasPrivateToken`` -> redemption -> ``hasRedemptionRecord`` ->
``send-redemption-record`` to the origin, which verifies ``Sec-Redemption-Record`` with the
sans-IO consumer and the JWK Set fetched from the issuer -> 200; a plain fetch gets 401; the
redemption Chromium sent, replayed over HTTP, is refused as a double spend.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass

import httpx
import pytest
from starlette.types import ASGIApp, Receive, Scope, Send

from pat_middleware.cli.pst_demo import create_pst_origin_app, origin_settings
from pat_middleware.cli.serve import reserve_port
from pat_middleware.issuer.pst import PSTIssuer
from pat_middleware.issuer.pst_keys import new_key_set
from pat_middleware.issuer.pst_server import (
    COMMITMENT_PATH,
    ISSUANCE_PATH,
    REDEMPTION_PATH,
    create_pst_issuer_app,
)
from pat_middleware.issuer.pst_wire import (
    CRYPTO_VERSION_HEADER,
    PROTOCOL_VERSION,
    PST_HEADER,
    IssueRequest,
    RedeemRequest,
)
from pat_middleware.policy import DecisionEvent, Policy
from tests._chromium import Page, chromium, chromium_path
from tests._servers import serve_asgi

BATCH_SIZE = 3

pytestmark = pytest.mark.skipif(
    chromium_path() is None,
    reason="Chromium is not installed (apt-get install chromium; .ci/run does)",
)


class Recorder:
    """ASGI wrapper that keeps the path and headers of every HTTP request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.requests: list[tuple[str, dict[str, str]]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
            self.requests.append((scope["path"], headers))
        await self.app(scope, receive, send)

    def headers_for(self, path: str) -> list[dict[str, str]]:
        return [headers for seen, headers in self.requests if seen == path]


class Decisions:
    """A metrics hook keeping every decision the origin's policy reports."""

    def __init__(self) -> None:
        self.events: list[DecisionEvent] = []

    def record(self, event: DecisionEvent) -> None:
        self.events.append(event)


@dataclass
class Setup:
    page: Page
    issuer: PSTIssuer
    issuer_url: str
    issuer_origin: str
    page_url: str
    recorder: Recorder
    other_url: str  # an origin whose policy accepts only its own redeeming origin
    other_decisions: Decisions


@pytest.fixture(scope="module")
def setup() -> Iterator[Setup]:
    """Our PST issuer, and the demo origin (pat-middleware pst-demo's) protected by our
    policy, which fetches the issuer's record keys and verifies Sec-Redemption-Record."""
    with ExitStack() as stack:
        issuer_socket, issuer_port = reserve_port()
        issuer_origin = f"http://localhost:{issuer_port}"
        origin_socket, origin_port = reserve_port()
        page_url = f"http://localhost:{origin_port}"
        other_socket, other_port = reserve_port()
        other_url = f"http://localhost:{other_port}"
        issuer = PSTIssuer(new_key_set(), issuer_origin=issuer_origin, batch_size=BATCH_SIZE)
        recorder = Recorder(create_pst_issuer_app(issuer))
        issuer_url = stack.enter_context(serve_asgi(recorder, sock=issuer_socket))
        policy = Policy(origin_settings(issuer_origin, page_url))
        stack.callback(policy.close)
        stack.enter_context(
            serve_asgi(create_pst_origin_app(issuer_origin, policy), sock=origin_socket)
        )
        decisions = Decisions()
        other = Policy(origin_settings(issuer_origin, other_url), metrics=decisions)
        stack.callback(other.close)
        stack.enter_context(
            serve_asgi(create_pst_origin_app(issuer_origin, other), sock=other_socket)
        )
        # What Chrome's registration does: fetch the commitment, here handed at launch.
        commitment = httpx.get(issuer_url + COMMITMENT_PATH).json()
        flag = json.dumps({issuer_origin: commitment}, separators=(",", ":"))
        page = stack.enter_context(
            chromium(f"--additional-private-state-token-key-commitments={flag}")
        )
        page.goto(page_url + "/")
        yield Setup(
            page, issuer, issuer_url, issuer_origin, page_url, recorder, other_url, decisions
        )


def _fetch(url: str, private_token: str) -> str:
    """JavaScript: fetch ``url`` with a ``privateToken`` member; status and text, or the error."""
    return (
        f"fetch({json.dumps(url)}, {{privateToken: {private_token}}})"
        ".then(async r => ({status: r.status, text: await r.text()}))"
        ".catch(e => ({error: String(e)}))"
    )


def test_chromium_issues_redeems_and_forwards_a_record_the_origin_verifies(setup: Setup) -> None:
    page, issuer_origin = setup.page, setup.issuer_origin
    started = time.monotonic()

    # 1. Issuance: Chromium asks for `batchsize` tokens and stores what we sign.
    assert page.evaluate(f"document.hasPrivateToken({json.dumps(issuer_origin)})") is False
    issued = page.evaluate(
        _fetch(issuer_origin + ISSUANCE_PATH, "{version: 1, operation: 'token-request'}")
    )
    assert issued == {"status": 200, "text": f"issued {BATCH_SIZE} tokens under key 1\n"}
    (issue_headers,) = setup.recorder.headers_for(ISSUANCE_PATH)
    assert issue_headers[CRYPTO_VERSION_HEADER.lower()] == PROTOCOL_VERSION
    assert len(IssueRequest.from_header(issue_headers[PST_HEADER.lower()]).blinded) == BATCH_SIZE
    assert page.evaluate(f"document.hasPrivateToken({json.dumps(issuer_origin)})") is True

    # 2. Redemption: one token for a redemption record.
    assert page.evaluate(f"document.hasRedemptionRecord({json.dumps(issuer_origin)})") is False
    redeemed = page.evaluate(
        _fetch(
            issuer_origin + REDEMPTION_PATH,
            "{version: 1, operation: 'token-redemption', refreshPolicy: 'refresh'}",
        )
    )
    assert redeemed == {"status": 200, "text": "redeemed\n"}
    assert page.evaluate(f"document.hasRedemptionRecord({json.dumps(issuer_origin)})") is True
    (redeem_headers,) = setup.recorder.headers_for(REDEMPTION_PATH)
    redeem_value = redeem_headers[PST_HEADER.lower()]
    client_data = RedeemRequest.from_header(redeem_value).parsed_client_data()
    assert client_data.redeeming_origin == setup.page_url
    assert abs(client_data.redemption_timestamp - time.time()) < 300

    # 3. The origin gets the record in Sec-Redemption-Record and verifies it.
    protected = page.evaluate(
        _fetch(
            "/protected",
            "{version: 1, operation: 'send-redemption-record', "
            f"issuers: [{json.dumps(issuer_origin)}]}}",
        )
    )
    assert protected == {
        "status": 200,
        "text": f"welcome: a record from {issuer_origin}, label 1",
    }

    # 4. Without the privateToken member no record travels: no signal, 401.
    plain = page.evaluate("fetch('/protected').then(async r => r.status)")
    assert plain == 401

    # 5. The token Chromium redeemed cannot be redeemed again (double spend).
    replay = httpx.post(
        setup.issuer_url + REDEMPTION_PATH,
        headers={PST_HEADER: redeem_value, CRYPTO_VERSION_HEADER: PROTOCOL_VERSION},
    )
    assert replay.status_code == 403
    assert replay.text.startswith("replayed")
    assert PST_HEADER.lower() not in replay.headers

    assert time.monotonic() - started < 30


def test_a_record_passes_again_and_only_where_it_was_redeemed(setup: Setup) -> None:
    # A record is a bearer record the browser re-sends while it lives: it passes again.
    # Chromium keeps records per top-level origin: another origin's page gets none to send
    # (a record carried there by hand is refused as wrong_origin: test_pst_signal.py).
    page = setup.page
    page.goto(setup.page_url + "/")
    if not page.evaluate(f"document.hasRedemptionRecord({json.dumps(setup.issuer_origin)})"):
        page.evaluate(
            _fetch(setup.issuer_origin + ISSUANCE_PATH, "{version: 1, operation: 'token-request'}")
        )
        page.evaluate(
            _fetch(
                setup.issuer_origin + REDEMPTION_PATH,
                "{version: 1, operation: 'token-redemption', refreshPolicy: 'none'}",
            )
        )
    send = (
        "{version: 1, operation: 'send-redemption-record', "
        f"issuers: [{json.dumps(setup.issuer_origin)}]}}"
    )
    for _ in range(2):
        assert page.evaluate(_fetch("/protected", send))["status"] == 200
    page.goto(setup.other_url + "/")
    refused = page.evaluate(_fetch("/protected", send))
    assert refused["status"] == 401
    assert [e.outcome for e in setup.other_decisions.events] == ["challenge"]
