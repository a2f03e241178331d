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
from dataclasses import dataclass, field

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from pat_middleware.core.redemption_record import (
    JWKS_PATH,
    RecordKeySet,
    RedemptionRecord,
    verify_redemption_record_header,
)
from pat_middleware.errors import TokenError
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
from tests._chromium import Page, chromium, chromium_path
from tests._servers import free_port, serve_asgi

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


@dataclass
class Origin:
    """The origin page server's state: what /protected verified."""

    issuer_origin: str
    page_origin: str = ""
    jwks: RecordKeySet | None = None
    verified: list[RedemptionRecord] = field(default_factory=list)

    def app(self) -> Starlette:
        async def home(request: Request) -> Response:
            return HTMLResponse("<!doctype html><title>PST origin</title><p>origin</p>")

        async def protected(request: Request) -> Response:
            assert self.jwks is not None
            try:
                record = verify_redemption_record_header(
                    request.headers.get("sec-redemption-record"),
                    trusted={self.issuer_origin: self.jwks},
                    accepted_origins=[self.page_origin],
                    now=time.time(),
                )
            except TokenError as e:
                return PlainTextResponse(e.reason.value, status_code=403)
            if record is None:
                return PlainTextResponse("no redemption record", status_code=401)
            self.verified.append(record)
            return PlainTextResponse(f"welcome, key {record.key_id}")

        return Starlette(routes=[Route("/", home), Route("/protected", protected)])


@dataclass
class Setup:
    page: Page
    issuer: PSTIssuer
    issuer_url: str
    issuer_origin: str
    page_url: str
    recorder: Recorder
    origin: Origin


@pytest.fixture(scope="module")
def setup() -> Iterator[Setup]:
    issuer_port = free_port()
    issuer_origin = f"http://localhost:{issuer_port}"
    issuer = PSTIssuer(new_key_set(), issuer_origin=issuer_origin, batch_size=BATCH_SIZE)
    recorder = Recorder(create_pst_issuer_app(issuer))
    origin = Origin(issuer_origin)
    with (
        serve_asgi(recorder, port=issuer_port) as issuer_url,
        serve_asgi(origin.app()) as origin_url,
    ):
        # What an origin does once: fetch the trusted issuer's keys. And what Chrome's
        # registration does: fetch the commitment, here handed to Chromium at launch.
        origin.jwks = RecordKeySet.from_bytes(httpx.get(issuer_url + JWKS_PATH).content)
        commitment = httpx.get(issuer_url + COMMITMENT_PATH).json()
        origin.page_origin = origin_url.replace("127.0.0.1", "localhost")
        flag = json.dumps({issuer_origin: commitment}, separators=(",", ":"))
        with chromium(f"--additional-private-state-token-key-commitments={flag}") as page:
            page.goto(origin.page_origin + "/")
            yield Setup(
                page, issuer, issuer_url, issuer_origin, origin.page_origin, recorder, origin
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
    assert protected == {"status": 200, "text": "welcome, key 1"}
    (record,) = setup.origin.verified
    assert (record.issuer, record.redeeming_origin, record.key_id) == (
        issuer_origin,
        setup.page_url,
        1,
    )
    assert record.expires_at - record.issued_at == setup.issuer.record_lifetime

    # 4. Without the privateToken member no record travels: no signal, 401.
    plain = page.evaluate("fetch('/protected').then(async r => [r.status, await r.text()])")
    assert plain == [401, "no redemption record"]

    # 5. The token Chromium redeemed cannot be redeemed again (double spend).
    replay = httpx.post(
        setup.issuer_url + REDEMPTION_PATH,
        headers={PST_HEADER: redeem_value, CRYPTO_VERSION_HEADER: PROTOCOL_VERSION},
    )
    assert replay.status_code == 403
    assert replay.text.startswith("replayed")
    assert PST_HEADER.lower() not in replay.headers

    assert time.monotonic() - started < 30


def test_chromium_refuses_a_record_for_an_untrusted_issuer_at_the_origin(setup: Setup) -> None:
    # The origin trusts only the issuer it was given; a record must also be re-sent (it is a
    # bearer record that lives for its lifetime) and still verify.
    page = setup.page
    page.evaluate(
        _fetch(setup.issuer_origin + ISSUANCE_PATH, "{version: 1, operation: 'token-request'}")
    )
    if not page.evaluate(f"document.hasRedemptionRecord({json.dumps(setup.issuer_origin)})"):
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
    again = page.evaluate(_fetch("/protected", send))
    assert again["status"] == 200
    trusted, setup.origin.issuer_origin = setup.origin.issuer_origin, "http://localhost:1"
    try:
        refused = page.evaluate(_fetch("/protected", send))
    finally:
        setup.origin.issuer_origin = trusted
    assert refused == {"status": 403, "text": "untrusted_issuer"}
