"""OpenTelemetry for pat-middleware: a ready :class:`~pat_middleware.policy.observe.MetricsHook`
recording metrics, and the decision on the request's span.

``pip install 'pat-middleware[opentelemetry]'`` (``opentelemetry-api`` only: the SDK, its
readers and exporters are the application's choice), then pass ``OpenTelemetryMetrics()`` as
the ``metrics=`` option of a policy or adapter (Django: ``PAT_METRICS``). With no SDK set up,
every call is a no-op of the API.

Instruments, on the meter ``pat_middleware`` (the global meter provider's unless ``meter``
is given):

* ``pat_middleware.decisions`` (counter, ``{decision}``): one per decision, with attributes
  ``pat.outcome`` (``challenge``, ``pass``, ``session``, ``reject``, ``unavailable``),
  ``pat.reason`` (the refusal reason, on ``reject`` only) and ``pat.issuer`` (a configured
  issuer's name, when the token named one of its keys);
* ``pat_middleware.decision.duration`` (histogram, ``s``): time spent in the policy per
  decision, with ``pat.outcome``.

The span current when the policy decides (the server span of an instrumented framework or
server: ``opentelemetry-instrumentation-asgi``, ``-wsgi``, ``-django``, ``-flask``...) gets
the same three attributes when it is recording. Every value comes from a closed set or the
configured issuer names, never from client input, so cardinality stays small. Importing this
module imports ``opentelemetry`` (the API).
"""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry import metrics, trace

from .._version import __version__
from ..policy.observe import DecisionEvent

METER_NAME = "pat_middleware"
DECISIONS = "pat_middleware.decisions"
DURATION = "pat_middleware.decision.duration"
OUTCOME = "pat.outcome"
REASON = "pat.reason"
ISSUER = "pat.issuer"
#: From 25 µs (a challenge) through an RSA-2048 verification (~50 µs) to slow stores (1 s):
#: the Prometheus hook's buckets, as an advice the SDK's default view follows.
LATENCY_BUCKETS = (
    0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025,
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
)  # fmt: skip


class OpenTelemetryMetrics:
    """Count decisions, time them, and label the current span.

    ``meter`` defaults to ``metrics.get_meter("pat_middleware")`` on the global provider
    (set up before or after: the API forwards to a provider set later). ``span_attributes =
    False`` leaves spans alone.
    """

    __slots__ = ("decisions", "duration", "span_attributes")

    def __init__(
        self,
        meter: metrics.Meter | None = None,
        *,
        span_attributes: bool = True,
        buckets: Sequence[float] = LATENCY_BUCKETS,
    ) -> None:
        if meter is None:
            meter = metrics.get_meter(METER_NAME, __version__)
        self.decisions = meter.create_counter(
            DECISIONS,
            unit="{decision}",
            description="Requests judged by pat-middleware, by outcome, refusal reason and issuer.",
        )
        self.duration = meter.create_histogram(
            DURATION,
            unit="s",
            description="Time spent in the pat-middleware policy per decision.",
            explicit_bucket_boundaries_advisory=list(buckets),
        )
        self.span_attributes = span_attributes

    def __repr__(self) -> str:
        return f"OpenTelemetryMetrics(span_attributes={self.span_attributes})"

    def record(self, event: DecisionEvent) -> None:
        outcome = event.outcome.value
        attributes = {OUTCOME: outcome}
        if event.reason is not None:
            attributes[REASON] = event.reason.value
        if event.issuer is not None:
            attributes[ISSUER] = event.issuer
        self.decisions.add(1, attributes)
        self.duration.record(event.seconds, {OUTCOME: outcome})
        if self.span_attributes:
            span = trace.get_current_span()
            if span.is_recording():
                span.set_attributes(attributes)


__all__ = [
    "DECISIONS",
    "DURATION",
    "ISSUER",
    "LATENCY_BUCKETS",
    "METER_NAME",
    "OUTCOME",
    "REASON",
    "OpenTelemetryMetrics",
]
