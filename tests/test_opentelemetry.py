"""OpenTelemetry metrics and span attributes, read back through the SDK's in-memory metric
reader and span exporter (the SDK is a dev dependency only; the hook needs the API)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from pat_middleware.errors import Reason
from pat_middleware.integrations.asgi import PrivateTokenMiddleware
from pat_middleware.integrations.opentelemetry import (
    DECISIONS,
    DURATION,
    LATENCY_BUCKETS,
    OpenTelemetryMetrics,
)
from pat_middleware.integrations.testing import PatIssuer, PatSettings
from pat_middleware.policy import Outcome, Policy
from pat_middleware.policy.observe import DecisionEvent


@dataclass
class Telemetry:
    reader: InMemoryMetricReader
    spans: InMemorySpanExporter
    tracer_provider: TracerProvider
    hook: OpenTelemetryMetrics

    def points(self, name: str) -> list[Any]:
        data = self.reader.get_metrics_data()
        if data is None:
            return []
        return [
            point
            for resource in data.resource_metrics
            for scope in resource.scope_metrics
            for metric in scope.metrics
            if metric.name == name
            for point in metric.data.data_points
        ]

    def counts(self) -> dict[tuple[tuple[str, Any], ...], int]:
        return {
            tuple(sorted(dict(p.attributes or {}).items())): p.value for p in self.points(DECISIONS)
        }

    def finished(self) -> list[ReadableSpan]:
        return list(self.spans.get_finished_spans())


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    hook = OpenTelemetryMetrics(meter_provider.get_meter("test"))
    yield Telemetry(reader, spans, tracer_provider, hook)
    meter_provider.shutdown()
    tracer_provider.shutdown()


def event(
    outcome: Outcome, reason: Reason | None = None, issuer: str | None = None
) -> DecisionEvent:
    return DecisionEvent(outcome, reason, issuer, None, 401, 0.0002)


def test_decisions_are_counted_by_outcome_reason_and_issuer(telemetry: Telemetry) -> None:
    hook = telemetry.hook
    hook.record(event(Outcome.CHALLENGE))
    hook.record(event(Outcome.CHALLENGE))
    hook.record(event(Outcome.REJECT, Reason.REPLAYED, "issuer.example"))
    hook.record(event(Outcome.PASS, None, "issuer.example"))
    assert telemetry.counts() == {
        (("pat.outcome", "challenge"),): 2,
        (
            ("pat.issuer", "issuer.example"),
            ("pat.outcome", "reject"),
            ("pat.reason", "replayed"),
        ): 1,
        (("pat.issuer", "issuer.example"), ("pat.outcome", "pass")): 1,
    }
    durations = telemetry.points(DURATION)
    assert {dict(p.attributes)["pat.outcome"]: p.count for p in durations} == {
        "challenge": 2,
        "reject": 1,
        "pass": 1,
    }
    first = durations[0]
    assert isinstance(first, HistogramDataPoint)
    assert tuple(first.explicit_bounds) == LATENCY_BUCKETS


def test_the_recording_span_gets_the_decision(telemetry: Telemetry) -> None:
    tracer = telemetry.tracer_provider.get_tracer("test")
    with tracer.start_as_current_span("POST /signup"):
        telemetry.hook.record(event(Outcome.REJECT, Reason.BAD_SIGNATURE, "issuer.example"))
    telemetry.hook.record(event(Outcome.CHALLENGE))  # no current span: nothing to label
    (span,) = telemetry.finished()
    assert dict(span.attributes or {}) == {
        "pat.outcome": "reject",
        "pat.reason": "bad_signature",
        "pat.issuer": "issuer.example",
    }


def test_span_attributes_can_be_turned_off(telemetry: Telemetry) -> None:
    provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    hook = OpenTelemetryMetrics(provider.get_meter("test"), span_attributes=False)
    with telemetry.tracer_provider.get_tracer("test").start_as_current_span("GET /"):
        hook.record(event(Outcome.CHALLENGE))
    (span,) = telemetry.finished()
    assert not span.attributes
    provider.shutdown()


def test_without_an_sdk_the_api_makes_it_a_no_op() -> None:
    hook = OpenTelemetryMetrics()  # the global provider: none set in this process
    hook.record(event(Outcome.PASS, None, "issuer.example"))


def test_importing_it_loads_the_api_only() -> None:
    code = (
        "import sys, pat_middleware.integrations.opentelemetry\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry.sdk')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_protected_app_reports_every_decision(telemetry: Telemetry) -> None:
    """Through the ASGI middleware, inside a server span as an instrumented server makes."""
    issuer = PatIssuer()
    policy = Policy(PatSettings(issuer)(protect=["/signup"]), metrics=telemetry.hook)

    async def signup(request: Request) -> Response:
        return PlainTextResponse("welcome")

    app = PrivateTokenMiddleware(Starlette(routes=[Route("/signup", signup)]), policy=policy)
    tracer = telemetry.tracer_provider.get_tracer("server")

    async def visit() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        statuses = []
        async with httpx.AsyncClient(transport=transport, base_url="http://app.test") as http:
            with tracer.start_as_current_span("challenge"):
                challenged = await http.get("/signup")
            answer = issuer.answer_challenge(challenged)
            with tracer.start_as_current_span("pass"):
                statuses.append((await http.get("/signup", headers=answer)).status_code)
            with tracer.start_as_current_span("session"):
                statuses.append((await http.get("/signup")).status_code)
            with tracer.start_as_current_span("replay"):
                statuses.append((await http.get("/signup", headers=answer)).status_code)
        return [challenged.status_code, *statuses]

    try:
        assert asyncio.run(visit()) == [401, 200, 200, 401]
    finally:
        policy.close()
    name = issuer.name
    assert telemetry.counts() == {
        (("pat.outcome", "challenge"),): 1,
        (("pat.issuer", name), ("pat.outcome", "pass")): 1,
        (("pat.outcome", "session"),): 1,  # a verified session names no key
        (("pat.issuer", name), ("pat.outcome", "reject"), ("pat.reason", "replayed")): 1,
    }
    labelled = {span.name: dict(span.attributes or {}) for span in telemetry.finished()}
    assert labelled["challenge"] == {"pat.outcome": "challenge"}
    assert labelled["pass"] == {"pat.outcome": "pass", "pat.issuer": name}
    assert labelled["replay"]["pat.reason"] == "replayed"
