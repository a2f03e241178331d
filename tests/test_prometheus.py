"""The Prometheus adapter: counters and the latency histogram, scraped from a real server."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from prometheus_client import CollectorRegistry, generate_latest, make_asgi_app
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from pat_middleware.core.headers import build_authorization
from pat_middleware.errors import Reason
from pat_middleware.integrations.asgi import PrivateTokenMiddleware
from pat_middleware.integrations.prometheus import PrometheusMetrics
from pat_middleware.policy import Outcome
from pat_middleware.policy.observe import DecisionEvent
from pat_middleware.tokens.blind_rsa import IssuerKey

from ._origin import ISSUER, answer, make_settings
from ._servers import serve_asgi
from ._wsgi_harness import Browser as HttpBrowser
from ._wsgi_harness import httpx_send


@pytest.fixture(scope="module")
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture(scope="module")
def metrics_url(issuer_key: IssuerKey, registry: CollectorRegistry) -> Iterator[str]:
    """The set-up docs/logging-and-metrics.md shows: /metrics mounted, behind the middleware."""

    async def page(request: Any) -> PlainTextResponse:
        return PlainTextResponse("ok")

    app = Starlette(
        routes=[Route("/protected", page), Mount("/metrics", app=make_asgi_app(registry))]
    )
    settings = make_settings(issuer_key, cookie_secure=False)
    wrapped = PrivateTokenMiddleware(app, settings=settings, metrics=PrometheusMetrics(registry))
    with serve_asgi(wrapped) as url:
        yield url


def _samples(text: str, name: str) -> dict[str, float]:
    """``{labels: value}`` of one metric in Prometheus exposition text."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}(\{{.*\}})? (\S+)", line)
        if match:
            out[match.group(1) or ""] = float(match.group(2))
    return out


def test_prometheus_counts_and_times_decisions_over_http(
    metrics_url: str,
    registry: CollectorRegistry,
    rsa_2048: rsa.RSAPrivateKey,
    issuer_key: IssuerKey,
) -> None:
    with httpx.Client(base_url=metrics_url, timeout=10.0) as http:
        browser = HttpBrowser(httpx_send(http))
        challenged = browser.get("/protected")
        assert challenged.status == 401
        www = challenged.header("www-authenticate")
        assert www is not None
        authorization = build_authorization(answer(www, rsa_2048, issuer_key))
        assert browser.get("/protected", authorization=authorization).status == 200
        assert browser.get("/protected").status == 200  # verified session
        assert browser.get("/protected", authorization=authorization).status == 401  # replay
        scraped = http.get("/metrics", follow_redirects=True)
    assert scraped.status_code == 200
    assert scraped.text == generate_latest(registry).decode()

    counts = _samples(scraped.text, "pat_middleware_decisions_total")
    assert counts == {
        '{issuer="",outcome="challenge",reason=""}': 1.0,
        f'{{issuer="{ISSUER}",outcome="pass",reason=""}}': 1.0,
        '{issuer="",outcome="session",reason=""}': 1.0,
        f'{{issuer="{ISSUER}",outcome="reject",reason="replayed"}}': 1.0,
    }
    timed = _samples(scraped.text, "pat_middleware_verification_seconds_count")
    assert timed == {f'{{outcome="{o}"}}': 1.0 for o in ("challenge", "pass", "session", "reject")}
    total = _samples(scraped.text, "pat_middleware_verification_seconds_sum")
    assert 0 < total['{outcome="pass"}'] < 1


def test_prometheus_metrics_share_one_registry() -> None:
    registry = CollectorRegistry()
    first, second = PrometheusMetrics(registry), PrometheusMetrics(registry)
    assert first.decisions is second.decisions  # no "duplicated timeseries" error
    event = DecisionEvent(Outcome.REJECT, Reason.EXPIRED, ISSUER, "ab", 401, 0.001)
    first.record(event)
    second.record(event)
    text = generate_latest(registry).decode()
    labels = f'{{issuer="{ISSUER}",outcome="reject",reason="expired"}}'
    assert _samples(text, "pat_middleware_decisions_total") == {labels: 2.0}
    other = PrometheusMetrics(registry, namespace="shop")
    assert other.decisions is not first.decisions
    unregistered = PrometheusMetrics(None)
    unregistered.record(event)
    assert "shop_decisions_total" in generate_latest(registry).decode()
