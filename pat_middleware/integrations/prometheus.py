"""Prometheus metrics for pat-middleware: a ready
:class:`~pat_middleware.policy.observe.MetricsHook`.

``pip install 'pat-middleware[prometheus]'``, then pass ``PrometheusMetrics()`` as the
``metrics=`` option of a policy or adapter, and expose the registry as usual
(``prometheus_client.make_asgi_app()``, ``make_wsgi_app()`` or ``start_http_server(port)``).

* ``pat_middleware_decisions_total{outcome, reason, issuer}``: one per decision. ``outcome``
  is one of ``challenge``, ``pass``, ``session``, ``reject``, ``unavailable``; ``reason`` is
  the refusal reason (``reject`` only, else empty); ``issuer`` a configured issuer's name
  (empty when no trusted key was named).
* ``pat_middleware_verification_seconds{outcome}``: time spent in the policy per decision.

Label values are closed sets or configured names, never client input, so the number of
series stays small. Importing this module imports prometheus_client.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Sequence

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram

from ..policy.observe import DecisionEvent

DEFAULT_NAMESPACE = "pat_middleware"
#: From 25 µs (a challenge) through an RSA-2048 verification (~50 µs) to slow stores (1 s).
LATENCY_BUCKETS = (
    0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025,
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
)  # fmt: skip

_Metrics = tuple[Counter, Histogram]
#: Metrics already registered, per registry and namespace: a second PrometheusMetrics on the
#: same registry (an app factory called twice, a Django settings change) shares them instead
#: of failing with "duplicated timeseries".
_registered: weakref.WeakKeyDictionary[CollectorRegistry, dict[str, _Metrics]] = (
    weakref.WeakKeyDictionary()
)
_lock = threading.Lock()


def _create(
    registry: CollectorRegistry | None, namespace: str, buckets: Sequence[float]
) -> _Metrics:
    decisions = Counter(
        "decisions",
        "Requests judged by pat-middleware, by outcome, refusal reason and issuer.",
        ["outcome", "reason", "issuer"],
        namespace=namespace,
        registry=registry,
    )
    latency = Histogram(
        "verification_seconds",
        "Time spent in the pat-middleware policy per decision (verification latency).",
        ["outcome"],
        namespace=namespace,
        registry=registry,
        buckets=buckets,
    )
    return decisions, latency


class PrometheusMetrics:
    """Count decisions and time them in ``registry`` (the global one by default).

    ``registry=None`` creates unregistered metrics (``.decisions`` and ``.latency``), for
    custom collection. Instances on the same registry and namespace share one set of metrics;
    the first one's ``buckets`` win.
    """

    __slots__ = ("decisions", "latency", "namespace")

    def __init__(
        self,
        registry: CollectorRegistry | None = REGISTRY,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        buckets: Sequence[float] = LATENCY_BUCKETS,
    ) -> None:
        self.namespace = namespace
        if registry is None:
            self.decisions, self.latency = _create(None, namespace, buckets)
            return
        with _lock:
            per_namespace = _registered.setdefault(registry, {})
            if namespace not in per_namespace:
                per_namespace[namespace] = _create(registry, namespace, buckets)
            self.decisions, self.latency = per_namespace[namespace]

    def __repr__(self) -> str:
        return f"PrometheusMetrics(namespace={self.namespace!r})"

    def record(self, event: DecisionEvent) -> None:
        reason = event.reason.value if event.reason is not None else ""
        self.decisions.labels(event.outcome, reason, event.issuer or "").inc()
        self.latency.labels(event.outcome).observe(event.seconds)


__all__ = ["DEFAULT_NAMESPACE", "LATENCY_BUCKETS", "PrometheusMetrics"]
