"""The PST issuer app under a real uvicorn server: endpoints, CORS, the trust hook, and 4xx
(never 5xx) for malformed input."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator

import httpx
import pytest
from starlette.requests import Request

from pat_middleware.core.redemption_record import (
    JWKS_MEDIA_TYPE,
    JWKS_PATH,
    RecordKeySet,
    verify_redemption_record,
)
from pat_middleware.errors import ConfigurationError
from pat_middleware.issuer.pst import PSTIssuer
from pat_middleware.issuer.pst_client import begin_issuance, finalize_issuance
from pat_middleware.issuer.pst_keys import (
    PSTKeySet,
    new_key_set,
    rotate_record_key,
    rotate_token_key,
)
from pat_middleware.issuer.pst_server import (
    COMMITMENT_PATH,
    ISSUANCE_PATH,
    REDEMPTION_PATH,
    IssuanceDecision,
    create_pst_issuer_app,
)
from pat_middleware.issuer.pst_wire import (
    CRYPTO_VERSION_HEADER,
    LIFETIME_HEADER,
    PROTOCOL_VERSION,
    PST_HEADER,
    IssueResponse,
    KeyCommitment,
)
from pat_middleware.stores import StoreUnavailable
from pat_middleware.tokens.oprf import GENERATOR, encode_compressed, encode_uncompressed
from tests._servers import serve_asgi

ISSUER = "https://issuer.example"
PAGE = "https://site.example"
DAY = 86_400


@pytest.fixture(scope="module")
def keys() -> PSTKeySet:
    first = new_key_set(now=time.time() - 70 * DAY)
    return rotate_token_key(first, now=time.time() - 8 * DAY)  # keys 1 and 2, 2 signing


@pytest.fixture(scope="module")
def issuer(keys: PSTKeySet) -> PSTIssuer:
    return PSTIssuer(keys, issuer_origin=ISSUER, batch_size=3, record_lifetime=600)


def _decide(request: Request) -> IssuanceDecision | bool:
    # A stand-in for real trust: a cookie the issuer set earlier picks the label.
    trust = request.cookies.get("trust")
    if trust == "none":
        return False
    if trust == "low":
        return IssuanceDecision(key_id=1, limit=1)
    return True


@pytest.fixture(scope="module")
def base_url(issuer: PSTIssuer) -> Iterator[str]:
    app = create_pst_issuer_app(issuer, decide=_decide, allow_origins=[PAGE, "http://localhost:1"])
    with serve_asgi(app) as url:
        yield url


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as c:
        yield c


def _headers(value: str, **extra: str) -> dict[str, str]:
    return {PST_HEADER: value, CRYPTO_VERSION_HEADER: PROTOCOL_VERSION, "Origin": PAGE, **extra}


def test_commitment_and_jwks(base_url: str, client: httpx.Client, issuer: PSTIssuer) -> None:
    response = client.get(base_url + COMMITMENT_PATH)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert KeyCommitment.from_bytes(response.content) == issuer.commitment()
    assert [k.key_id for k in issuer.commitment().keys] == [1, 2]
    jwks = client.get(base_url + JWKS_PATH)
    assert jwks.headers["content-type"] == JWKS_MEDIA_TYPE
    assert RecordKeySet.from_bytes(jwks.content) == issuer.record_key_set()
    assert "max-age=" in jwks.headers["cache-control"]


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_issue_and_redeem_over_http(
    base_url: str, client: httpx.Client, issuer: PSTIssuer, method: str
) -> None:
    request, pending = begin_issuance(3)
    issued = client.request(method, base_url + ISSUANCE_PATH, headers=_headers(request.to_header()))
    assert issued.status_code == 200, issued.text
    assert issued.headers["access-control-allow-origin"] == PAGE
    assert issued.headers["access-control-allow-credentials"] == "true"
    assert issued.headers["cache-control"] == "no-store"
    response = IssueResponse.from_header(issued.headers[PST_HEADER])
    assert response.key_id == 2  # the newest signing key
    tokens = finalize_issuance(pending, response, issuer.commitment())
    redeem = tokens[0].redeem_request(PAGE, int(time.time())).to_header()
    redeemed = client.request(method, base_url + REDEMPTION_PATH, headers=_headers(redeem))
    assert redeemed.status_code == 200, redeemed.text
    assert redeemed.headers[LIFETIME_HEADER] == "600"
    assert redeemed.headers["access-control-allow-origin"] == PAGE
    record = verify_redemption_record(
        redeemed.headers[PST_HEADER],
        issuer=ISSUER,
        keys=issuer.record_key_set(),
        accepted_origins=[PAGE],
        now=time.time(),
    )
    assert record.key_id == 2
    again = client.request(method, base_url + REDEMPTION_PATH, headers=_headers(redeem))
    assert again.status_code == 403 and again.text.startswith("replayed")
    assert PST_HEADER not in again.headers


def test_the_trust_hook_decides(base_url: str, client: httpx.Client) -> None:
    request, _ = begin_issuance(3)
    refused = client.post(
        base_url + ISSUANCE_PATH, headers=_headers(request.to_header(), Cookie="trust=none")
    )
    assert refused.status_code == 403 and PST_HEADER not in refused.headers
    low = client.post(
        base_url + ISSUANCE_PATH, headers=_headers(request.to_header(), Cookie="trust=low")
    )
    response = IssueResponse.from_header(low.headers[PST_HEADER])
    assert (response.key_id, len(response.evaluated)) == (1, 1)


def test_cors_preflight_and_origins(base_url: str, client: httpx.Client) -> None:
    preflight = client.options(
        base_url + ISSUANCE_PATH,
        headers={
            "Origin": PAGE,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == PAGE
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert preflight.headers["access-control-allow-headers"] == "content-type"
    stranger = client.options(
        base_url + REDEMPTION_PATH, headers={"Origin": "https://evil.example"}
    )
    assert "access-control-allow-origin" not in stranger.headers
    assert stranger.headers["vary"] == "Origin"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.mark.parametrize("path", [ISSUANCE_PATH, REDEMPTION_PATH])
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {PST_HEADER: ""},
        {PST_HEADER: "%%%"},
        {PST_HEADER: "AAE="},
        {PST_HEADER: _b64(b"\x00\x01" + b"\x04" + b"\x07" * 96)},
        {PST_HEADER: _b64(b"\x00\x01" + encode_compressed(GENERATOR))},
        {PST_HEADER: _b64(b"\x00\x00")},
        {PST_HEADER: _b64(b"\x00\xa5" + b"\x00" * 200)},
        {PST_HEADER: "A" * 30_000},
        {
            PST_HEADER: _b64(b"\x00\x01" + encode_uncompressed(GENERATOR)),
            CRYPTO_VERSION_HEADER: "X",
        },
    ],
)
def test_malformed_input_gets_4xx(
    base_url: str, client: httpx.Client, path: str, headers: dict[str, str]
) -> None:
    response = client.post(base_url + path, headers={"Origin": PAGE, **headers})
    assert 400 <= response.status_code < 500, response.text
    assert PST_HEADER not in response.headers
    assert "Traceback" not in response.text
    assert response.headers.get("access-control-allow-origin") == PAGE


def test_two_token_headers_are_refused(base_url: str, client: httpx.Client) -> None:
    request, _ = begin_issuance(1)
    value = request.to_header()
    response = client.post(
        base_url + ISSUANCE_PATH, headers=[(PST_HEADER, value), (PST_HEADER, value)]
    )
    assert response.status_code == 400


def test_store_outage_is_503_with_retry_after(keys: PSTKeySet, issuer: PSTIssuer) -> None:
    class Down:
        def spend(self, key: bytes, ttl: float) -> bool:
            raise StoreUnavailable("down", retry_after=7)

        async def spend_async(self, key: bytes, ttl: float) -> bool:
            raise StoreUnavailable("down", retry_after=7)

        def close(self) -> None: ...

        async def aclose(self) -> None: ...

    broken = PSTIssuer(keys, issuer_origin=ISSUER, replay_store=Down())
    request, pending = begin_issuance(1)
    with serve_asgi(create_pst_issuer_app(broken)) as url, httpx.Client() as client:
        issued = client.get(url + ISSUANCE_PATH, headers=_headers(request.to_header()))
        tokens = finalize_issuance(
            pending, IssueResponse.from_header(issued.headers[PST_HEADER]), broken.commitment()
        )
        value = tokens[0].redeem_request(PAGE, int(time.time())).to_header()
        response = client.get(url + REDEMPTION_PATH, headers=_headers(value))
    assert response.status_code == 503 and response.headers["retry-after"] == "7"


def test_app_configuration_is_checked(issuer: PSTIssuer) -> None:
    with pytest.raises(ConfigurationError):
        create_pst_issuer_app(issuer, allow_origins=["not an origin"])
    with pytest.raises(ConfigurationError):
        create_pst_issuer_app(issuer, max_age=-1)


def test_published_documents_are_built_again_only_when_a_key_leaves_them() -> None:
    start = 1_000_000_000.0
    first = new_key_set(now=start, lifetime=100 * DAY)
    keys = rotate_record_key(
        rotate_token_key(first, now=start + 61 * DAY, lifetime=100 * DAY),
        now=start + 62 * DAY,
        keep_for=DAY,
    )
    issuer = PSTIssuer(keys, issuer_origin=ISSUER, clock=lambda: start + 62 * DAY)
    at = start + 62 * DAY
    body = issuer.commitment_body(at)
    assert body is issuer.commitment_body(at + 10)  # the same keys: built once
    assert KeyCommitment.from_bytes(body) == issuer.commitment(at)
    assert [k.key_id for k in issuer.commitment(at).keys] == [1, 2]
    later = start + 101 * DAY  # key 1 has expired
    assert KeyCommitment.from_bytes(issuer.commitment_body(later)) == issuer.commitment(later)
    assert [k.key_id for k in KeyCommitment.from_bytes(issuer.commitment_body(later)).keys] == [2]
    jwks = issuer.record_key_set_body(at)
    assert jwks is issuer.record_key_set_body(at + 10)
    assert len(RecordKeySet.from_bytes(jwks).keys) == 2  # the retired record key, kept a day
    after = at + 2 * DAY
    assert RecordKeySet.from_bytes(issuer.record_key_set_body(after)) == issuer.record_key_set(
        after
    )
    assert len(issuer.record_key_set(after).keys) == 1
    # A clock set back is answered afresh, not from the later document.
    assert KeyCommitment.from_bytes(issuer.commitment_body(at)) == issuer.commitment(at)


def test_a_decide_hook_that_is_not_a_function_is_refused_at_start_up(issuer: PSTIssuer) -> None:
    with pytest.raises(ConfigurationError) as info:
        create_pst_issuer_app(issuer, decide=True)  # type: ignore[arg-type]
    assert info.value.setting == "decide"
