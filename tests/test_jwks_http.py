"""Record verification keys fetched over real HTTP: our PST issuer app under uvicorn rotating
its record signing key, and loopback servers that answer slowly or wrongly.

The rotation tests share one fake clock between the issuer and the origin and refresh by
hand, except the last one, which runs the background refresher on the real clock.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from starlette.types import ASGIApp, Receive, Scope, Send

from pat_middleware.core.jwks import JWKS_MEDIA_TYPE, JWKS_PATH, RecordKeySet
from pat_middleware.discovery import RecordKeySource
from pat_middleware.discovery.refresher import USER_AGENT, attach
from pat_middleware.errors import ConfigurationError, Reason, TokenError
from pat_middleware.issuer.pst import PSTIssuer
from pat_middleware.issuer.pst_client import begin_issuance, finalize_issuance
from pat_middleware.issuer.pst_keys import PSTKeySet, new_key_set, rotate_record_key
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
    IssueResponse,
    KeyCommitment,
)
from pat_middleware.settings import DiscoveryOptions
from pat_middleware.settings.pst import PSTSettings, parse_pst_settings
from tests._servers import serve_asgi

from ._directory_server import (
    Exchange,
    Switch,
    directory_server,
    document,
    head,
    trickled_body,
    trickled_headers,
)
from ._origin import FakeClock

PAGE = "https://site.example"
DAY = 86_400
OPTIONS = DiscoveryOptions(
    refresh_min=1, refresh_max=3600, unknown_key_refresh=30, timeout=5, key_grace=600
)


class IssuerHolder:
    """Serves the PST issuer app of the moment (a rotation swaps it) and counts the origin's
    JWK Set requests."""

    def __init__(self) -> None:
        self.app: ASGIApp | None = None
        self.jwks_hits = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["path"] == JWKS_PATH
            and (b"user-agent", USER_AGENT.encode()) in scope["headers"]
        ):
            self.jwks_hits += 1
        if self.app is None:
            raise RuntimeError("no issuer yet")
        await self.app(scope, receive, send)


@pytest.fixture
def holder() -> IssuerHolder:
    return IssuerHolder()


@pytest.fixture
def issuer_url(holder: IssuerHolder) -> Iterator[str]:
    with serve_asgi(holder) as url:
        yield url


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as c:
        yield c


def serve(holder: IssuerHolder, keys: PSTKeySet, origin: str, clock: Callable[[], float]) -> None:
    issuer = PSTIssuer(keys, issuer_origin=origin, record_lifetime=DAY, clock=clock)
    holder.app = create_pst_issuer_app(issuer, max_age=60)


def pst_settings(issuer_url: str) -> PSTSettings:
    return parse_pst_settings(
        {"pst_issuers": [{"origin": issuer_url, "jwks": issuer_url}]}, origin_info=["site.example"]
    )


def redeem(client: httpx.Client, issuer_url: str) -> str:
    """Issue one token and redeem it over HTTP, as Chromium does; the value Chromium then
    sends in Sec-Redemption-Record."""
    headers = {CRYPTO_VERSION_HEADER: PROTOCOL_VERSION, "Origin": PAGE}
    request, pending = begin_issuance(1)
    issued = client.post(
        issuer_url + ISSUANCE_PATH, headers={**headers, PST_HEADER: request.to_header()}
    )
    assert issued.status_code == 200, issued.text
    commitment = client.get(issuer_url + COMMITMENT_PATH)
    [token] = finalize_issuance(
        pending,
        IssueResponse.from_header(issued.headers[PST_HEADER]),
        KeyCommitment.from_bytes(commitment.content),
    )
    value = base64.b64encode(token.redeem_request(PAGE, int(time.time())).to_bytes()).decode()
    redeemed = client.post(issuer_url + REDEMPTION_PATH, headers={**headers, PST_HEADER: value})
    assert redeemed.status_code == 200, redeemed.text
    return f'"{issuer_url}";redemption-record="{redeemed.headers[PST_HEADER]}"'


def reason(source: RecordKeySource, value: str) -> Reason:
    with pytest.raises(TokenError) as info:
        source.verify(value)
    return info.value.reason


def _wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


# ----------------------------------------------------------------------------- rotation


def test_a_rotated_record_key_old_records_in_the_grace_new_ones_after_a_refresh(
    holder: IssuerHolder, issuer_url: str, client: httpx.Client
) -> None:
    """The issuer replaces its signing key and stops publishing the old one at once
    (keep_for = 0, the harshest case): records it signed before verify for
    directory_key_grace more; records under the new key verify once a refresh, which the
    first of them asks for, has read the new set."""
    clock = FakeClock(time.time())
    keys = new_key_set(now=clock())
    serve(holder, keys, issuer_url, clock)
    source = RecordKeySource.from_settings(pst_settings(issuer_url), OPTIONS, clock=clock)
    attach(source, background=False)
    assert holder.jwks_hits == 1
    old = redeem(client, issuer_url)
    record = source.verify(old)
    assert record is not None and record.kid == keys.record_kid and record.issuer == issuer_url

    rotated = rotate_record_key(keys, now=clock(), keep_for=0)
    serve(holder, rotated, issuer_url, clock)
    new = redeem(client, issuer_url)
    assert reason(source, new) is Reason.UNKNOWN_KEY  # not seen yet: asks for a refresh
    [state] = source.states
    assert state.due(clock())
    source.refresh()  # what the background refresher does when woken
    assert holder.jwks_hits == 2
    verified = source.verify(new)
    assert verified is not None and verified.kid == rotated.record_kid
    assert source.verify(old) is not None  # in its grace

    clock.advance(599)
    assert source.verify(old) is not None
    clock.advance(1)
    assert reason(source, old) is Reason.UNKNOWN_KEY  # the grace is over
    assert source.verify(new) is not None


def test_an_issuer_that_keeps_the_old_key_published_needs_no_grace(
    holder: IssuerHolder, issuer_url: str, client: httpx.Client
) -> None:
    clock = FakeClock(time.time())
    keys = new_key_set(now=clock())
    serve(holder, keys, issuer_url, clock)
    source = RecordKeySource.from_settings(pst_settings(issuer_url), OPTIONS, clock=clock)
    attach(source, background=False)
    old = redeem(client, issuer_url)
    serve(holder, rotate_record_key(keys, now=clock(), keep_for=DAY), issuer_url, clock)
    new = redeem(client, issuer_url)
    clock.advance(61)  # the set's max-age = 60: due again
    source.refresh()
    [keys_now] = source.current().trusted.values()
    assert len(keys_now.keys) == 2 and source.states[0].retired == {}
    clock.advance(3600)
    source.refresh(force=True)
    assert source.verify(old) is not None and source.verify(new) is not None


def test_configured_keys_verify_without_any_fetch(
    holder: IssuerHolder, issuer_url: str, client: httpx.Client, tmp_path: Path
) -> None:
    clock = FakeClock(time.time())
    keys = new_key_set(now=clock())
    serve(holder, keys, issuer_url, clock)
    path = tmp_path / "rr-keys.json"
    path.write_bytes(keys.record_key_set(0).to_bytes())
    settings = parse_pst_settings(
        {"pst_issuers": [{"origin": issuer_url, "jwks_file": str(path)}]},
        origin_info=["site.example"],
    )
    source = RecordKeySource.from_settings(settings, OPTIONS, clock=clock)
    assert not source.discovers
    assert source.verify(redeem(client, issuer_url)) is not None
    assert holder.jwks_hits == 0


def test_the_background_refresher_fetches_the_new_key_when_a_record_names_it(
    holder: IssuerHolder, issuer_url: str, client: httpx.Client
) -> None:
    """On the real clock, as a deployment runs: the set says max-age = 60, so nothing is due;
    the first record under the new key wakes the refresher thread, which fetches at once."""
    keys = new_key_set()
    serve(holder, keys, issuer_url, time.time)
    options = replace(OPTIONS, unknown_key_refresh=1)
    source = RecordKeySource.from_settings(pst_settings(issuer_url), options)
    attach(source)
    try:
        rotated = rotate_record_key(keys, keep_for=0)
        serve(holder, rotated, issuer_url, time.time)
        new = redeem(client, issuer_url)
        assert reason(source, new) is Reason.UNKNOWN_KEY
        assert _wait_until(lambda: source.current().version >= 2, 3.0)
        assert source.verify(new) is not None
        assert holder.jwks_hits == 2
    finally:
        source.close()


# ------------------------------------------------------------ slow and wrong answers


@pytest.fixture(scope="module")
def published() -> RecordKeySet:
    return new_key_set().record_key_set(0)


def source_for(url: str, timeout: float = 5) -> RecordKeySource:
    settings = parse_pst_settings(
        {"pst_issuers": [{"origin": "https://issuer.example", "jwks": url + "/keys"}]},
        origin_info=["site.example"],
    )
    options = replace(OPTIONS, timeout=timeout)
    return RecordKeySource.from_settings(settings, options)


@pytest.mark.parametrize("slow", ["headers", "body"])
def test_a_trickling_server_is_cut_at_the_deadline(published: RecordKeySet, slow: str) -> None:
    """One header line, or one body byte, every 0.3 s: each read well within any per-read
    timeout. The fetch ends at directory_timeout all the same, the connection is dropped,
    and the last good keys stay."""
    answer = Switch(document(published.to_bytes(), JWKS_MEDIA_TYPE))
    with directory_server(answer) as server:
        source = source_for(server.url, timeout=1)
        attach(source, background=False)
        answer.answer = (
            trickled_headers(every=0.3, lines=20)
            if slow == "headers"
            else trickled_body(published.to_bytes(), every=0.3, count=20)
        )
        started = time.monotonic()
        source.refresh(force=True)
        elapsed = time.monotonic() - started
        assert 1.0 <= elapsed < 1.8, elapsed
        [state] = source.states
        assert state.last_error == "no complete answer within directory_timeout (1 s)"
        assert _wait_until(lambda: server.open_connections == 0, 1.5)
        [kept] = source.current().trusted.values()
        assert kept == published


@pytest.mark.parametrize(
    ("content_type", "refused"),
    [
        ("text/html; charset=utf-8", True),
        ("application/octet-stream", True),
        ("application/json", False),
        (JWKS_MEDIA_TYPE, False),
    ],
)
def test_only_a_jwk_set_or_json_is_read(
    published: RecordKeySet, content_type: str, refused: bool
) -> None:
    with directory_server(document(published.to_bytes(), content_type)) as server:
        source = source_for(server.url)
        if not refused:
            attach(source, background=False)
            assert source.current().trusted["https://issuer.example"] == published
            return
        with pytest.raises(ConfigurationError) as info:
            attach(source, background=False)
    assert info.value.setting == "pst_issuers[0].jwks"
    assert (
        f"the JWK Set came as Content-Type '{content_type}'; expected {JWKS_MEDIA_TYPE} or JSON"
        in info.value.message
    )


def test_an_oversized_or_compressed_set_is_refused(published: RecordKeySet) -> None:
    big = b'{"keys": [], "pad": "' + b"x" * 70_000 + b'"}'
    gzip = head("200 OK", ("Content-Type", JWKS_MEDIA_TYPE), ("Content-Encoding", "gzip"))

    def compressed(exchange: Exchange) -> None:
        exchange.send(gzip + published.to_bytes())

    for answer, message in [
        (document(big, JWKS_MEDIA_TYPE), "the JWK Set is longer than 65536 bytes"),
        (compressed, "the JWK Set came with Content-Encoding 'gzip'"),
    ]:
        with directory_server(answer) as server:
            source = source_for(server.url)
            with pytest.raises(ConfigurationError, match=message):
                attach(source, background=False)
