"""Prometheus metrics of one service, in a registry of its own (several apps may share a
process in tests and benchmarks)."""

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# Seconds; dense below the default 250 ms bound, where the p99 of a healthy service lies.
LATENCY_BUCKETS = (0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0)


class ServingMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "qlib_serving_requests",
            "Requests answered, by endpoint, spec, version, slot and HTTP status.",
            ["endpoint", "spec", "version", "slot", "status"],
            registry=self.registry,
        )
        self.errors = Counter(
            "qlib_serving_errors",
            "Requests that failed (4xx and 5xx) or fell back from the canary, by kind.",
            ["endpoint", "spec", "version", "kind"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "qlib_serving_request_latency_seconds",
            "Time from request to response, by endpoint, spec and version.",
            ["endpoint", "spec", "version"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.swaps = Counter(
            "qlib_serving_swaps",
            "Slot changes, by spec and outcome (switched, refused, rolled_back).",
            ["spec", "outcome"],
            registry=self.registry,
        )
        self.active_version = Gauge(
            "qlib_serving_active_version",
            "Version number served from each spec's active slot.",
            ["spec", "slot"],
            registry=self.registry,
        )
        self.log_pending = Gauge(
            "qlib_serving_request_log_pending",
            "Request-log records buffered and not yet on disk.",
            registry=self.registry,
        )

    def observe(
        self, endpoint: str, spec: str, version: str, slot: str, status: int, seconds: float
    ) -> None:
        self.requests.labels(endpoint, spec, version, slot, str(status)).inc()
        self.latency.labels(endpoint, spec, version).observe(seconds)
        if status >= 400:
            kind = "client" if status < 500 else "server"
            self.errors.labels(endpoint, spec, version, kind).inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
