"""Daily serving metrics from the request log: volume, error rate and latency percentiles per
version, threshold breaches with concrete suggestions (seed 004 6.4), and a plot.

Suggestions come from what the log shows about the slow requests: the first requests after a
version starts (cold loads), the number of instruments per request (batch sizes), the first
request of a session, which reads its features from the lake (slow features), and one version
slower than another on like requests (model size).
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

COLD_REQUESTS = 5
LARGE_BATCH = 200


@dataclass(frozen=True)
class Breach:
    rule: str
    value: float
    bound: float
    scope: str
    suggestion: str


@dataclass(frozen=True)
class ServingReport:
    per_version: pl.DataFrame  # spec, version, requests, errors, error_rate, p50/p95/p99/max ms
    breaches: list[Breach] = field(default_factory=list)
    requests: int = 0
    error_rate: float = 0.0

    def breaches_table(self) -> list[dict[str, Any]]:
        return [b.__dict__ for b in self.breaches]


def _p99(frame: pl.DataFrame) -> float:
    return float(frame.get_column("latency_ms").quantile(0.99) or 0.0) if frame.height else 0.0


def _latency_suggestions(scoped: pl.DataFrame, p99_ms: float, others: pl.DataFrame) -> list[str]:
    """Why the tail of ``scoped`` (one version's answered predictions) is slow."""
    found = []
    ordered = scoped.sort("time")
    cold, warm = ordered.head(COLD_REQUESTS), ordered.slice(COLD_REQUESTS)
    if warm.height and _p99(cold) > p99_ms >= _p99(warm):
        found.append(
            f"cold loads: the first {COLD_REQUESTS} requests after the version started reach "
            f"p99 {_p99(cold):.0f} ms, the rest {_p99(warm):.0f} ms; warm the idle slot with "
            "the fixed sample before switching"
        )
    large = scoped.filter(pl.col("instruments") >= LARGE_BATCH)
    small = scoped.filter(pl.col("instruments") < LARGE_BATCH)
    if large.height and small.height and _p99(large) > p99_ms >= _p99(small):
        found.append(
            f"batch sizes: requests of >= {LARGE_BATCH} instruments reach p99 {_p99(large):.0f} "
            f"ms, smaller ones {_p99(small):.0f} ms; split large requests or score them by "
            "session with /v1/signal"
        )
    dated = scoped.filter(pl.col("session").is_not_null()).sort("time")
    first = dated.unique(["spec", "session"], keep="first", maintain_order=True)
    repeat = dated.join(first.select("request_id"), on="request_id", how="anti")
    if first.height and repeat.height and _p99(first) > p99_ms >= _p99(repeat):
        found.append(
            f"slow features: the first request of a session reads its features from the lake "
            f"(p99 {_p99(first):.0f} ms vs {_p99(repeat):.0f} ms once cached); request the "
            "session once after its features are materialized to warm the cache"
        )
    if others.height:
        median, other_median = (
            float(scoped.get_column("latency_ms").median() or 0.0),
            float(others.get_column("latency_ms").median() or 0.0),
        )
        if other_median and median > 1.5 * other_median:
            found.append(
                f"model size: median {median:.0f} ms against {other_median:.0f} ms for the other "
                "versions on the same service; a smaller model (fewer trees or leaves, fewer "
                "features) or more service processes"
            )
    return found or [
        "no single cause stands out: add service processes (uvicorn workers) or cores; the "
        "service is CPU-bound per request"
    ]


def serving_metrics(log: pl.DataFrame, p99_ms: float, max_error_rate: float) -> ServingReport:
    """The day's metrics of ``log`` (the request log's rows) against the two thresholds."""
    predictions = log.filter(pl.col("endpoint") == "predict")
    if not log.height:
        empty = pl.DataFrame(schema={"spec": pl.String(), "version": pl.String()})
        return ServingReport(empty)
    failed = pl.col("status") >= 500
    per_version = (
        log.group_by("endpoint", "spec", "version")
        .agg(
            pl.len().alias("requests"),
            failed.sum().alias("errors"),
            (pl.col("status").is_between(400, 499)).sum().alias("refused"),
            pl.col("latency_ms").quantile(0.5).alias("p50_ms"),
            pl.col("latency_ms").quantile(0.95).alias("p95_ms"),
            pl.col("latency_ms").quantile(0.99).alias("p99_ms"),
            pl.col("latency_ms").max().alias("max_ms"),
            pl.col("instruments").mean().alias("mean_instruments"),
        )
        .with_columns((pl.col("errors") / pl.col("requests")).alias("error_rate"))
        .sort("endpoint", "spec", "version")
    )
    breaches = []
    for row in per_version.iter_rows(named=True):
        scope = f"{row['endpoint']} {row['spec']} v{row['version']}"
        if row["error_rate"] > max_error_rate:
            mine = log.filter(
                (pl.col("spec") == row["spec"]) & (pl.col("version") == row["version"]) & failed
            )
            top = mine.group_by("error").len().sort("len", descending=True).head(1)
            message = top.get_column("error")[0] if top.height else "unknown"
            breaches.append(
                Breach(
                    "error_rate",
                    row["error_rate"],
                    max_error_rate,
                    scope,
                    f"most frequent error ({top.get_column('len')[0] if top.height else 0}x): "
                    f"{message}; roll back to the previous slot (POST /admin/switch) and "
                    "check the version's gates",
                )
            )
        if row["p99_ms"] is not None and row["p99_ms"] > p99_ms:
            same = (pl.col("spec") == row["spec"]) & (pl.col("version") == row["version"])
            answered = predictions.filter(same & (pl.col("status") == 200))
            others = predictions.filter(
                (pl.col("spec") == row["spec"]) & (pl.col("version") != row["version"])
            )
            for suggestion in _latency_suggestions(answered, p99_ms, others):
                breaches.append(Breach("p99_ms", row["p99_ms"], p99_ms, scope, suggestion))
    errors = int(log.select(failed.sum()).item())
    return ServingReport(per_version, breaches, log.height, errors / log.height)


def plot_serving(log: pl.DataFrame, p99_ms: float, path: Path) -> Path:
    """Latency over the day per version (with the p99 bound) and requests per minute."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (latency, volume) = plt.subplots(2, 1, figsize=(11, 7), sharex=True)
    for (spec, version), part in log.sort("time").group_by(
        ["spec", "version"], maintain_order=True
    ):
        label = f"{spec} v{version}" if version else f"{spec or 'refused'}"
        latency.scatter(
            part.get_column("time").to_list(), part.get_column("latency_ms"), s=4, label=label
        )
    latency.axhline(p99_ms, color="red", linestyle="--", label=f"p99 bound {p99_ms:.0f} ms")
    latency.set_ylabel("latency (ms)")
    latency.set_yscale("log")
    latency.legend(loc="upper right", fontsize=8)
    latency.set_title("requests of the day")
    per_minute = (
        log.sort("time")
        .group_by_dynamic("time", every="1m")
        .agg(pl.len().alias("n"), (pl.col("status") >= 500).sum().alias("errors"))
    )
    volume.bar(
        per_minute.get_column("time").to_list(),
        per_minute.get_column("n"),
        width=1 / 1440,
        label="requests",
    )
    volume.bar(
        per_minute.get_column("time").to_list(),
        per_minute.get_column("errors"),
        width=1 / 1440,
        color="red",
        label="5xx",
    )
    volume.set_ylabel("per minute")
    volume.legend(loc="upper right", fontsize=8)
    figure.autofmt_xdate()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
