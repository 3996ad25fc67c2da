"""serving_metrics through Dagster, from a request log written by the service's own writer:
per-version percentiles, a 5xx breach naming the error, a latency breach naming its cause."""

from datetime import UTC, date, datetime, timedelta

import dagster as dg
import polars as pl

from qlib_assets.defs.serving import build_serving_defs
from qlib_assets.monitoring.serving_metrics import serving_metrics
from qlib_assets.serving.request_log import RequestLog, read_request_log
from qlib_assets.settings import ServingSettings, Settings


def _record(i: int, at: datetime, version: str, latency: float, status: int, size: int) -> dict:
    return {
        "request_id": f"r{i}",
        "time": at,
        "client": f"c{i % 7}",
        "endpoint": "predict",
        "spec": "lgbm_alpha158",
        "version": version,
        "slot": "blue" if version == "1" else "green",
        "session": date(2024, 3, 1),
        "instruments": size,
        "inputs_digest": "ab" * 16,
        "scores": [0.1] * size if status == 200 else [],
        "latency_ms": latency,
        "status": status,
        "error": None if status == 200 else "RuntimeError: planted",
    }


def _write_log(settings: Settings) -> date:
    now = datetime.now(UTC)
    log = RequestLog(settings.serving_dir / "request_log", flush_seconds=0.05)
    for i in range(200):  # v1: small requests, fast, healthy
        log.append(_record(i, now - timedelta(seconds=400 - i), "1", 20 + i % 5, 200, 5))
    for i in range(200, 300):  # v2: large batches are slow, 5 % fail
        size = 300 if i % 2 else 5
        status = 500 if i % 20 == 0 else 200
        log.append(
            _record(
                i, now - timedelta(seconds=300 - i), "2", 900 if size == 300 else 30, status, size
            )
        )
    log.close()
    return now.date()


def test_serving_metrics_asset_reports_percentiles_and_breaches(settings: Settings) -> None:
    settings = settings.model_copy(
        update={"serving": ServingSettings(p99_ms=250, max_error_rate=0.01)}
    )
    day = _write_log(settings)
    frame = read_request_log(settings.serving_dir / "request_log", [day])
    assert frame.height == 300 and frame.get_column("request_id").n_unique() == 300

    report = serving_metrics(frame, 250, 0.01)
    by_version = {r["version"]: r for r in report.per_version.iter_rows(named=True)}
    assert by_version["1"]["requests"] == 200 and by_version["1"]["errors"] == 0
    assert by_version["1"]["p99_ms"] <= 24
    assert by_version["2"]["errors"] == 5 and by_version["2"]["p99_ms"] == 900
    rules = {(b.rule, b.scope.split()[-1]) for b in report.breaches}
    assert rules == {("error_rate", "v2"), ("p99_ms", "v2")}
    suggestions = " ".join(b.suggestion for b in report.breaches)
    assert "RuntimeError: planted" in suggestions and "batch sizes" in suggestions

    defs = build_serving_defs(settings)
    result = dg.materialize(
        list(defs.assets or []),
        selection=["serving_metrics"],
        partition_key=day.isoformat(),
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert result.success
    (event,) = result.asset_materializations_for_node("serving_metrics")
    assert event.metadata["requests"].value == 300
    assert event.metadata["breaches"].value == len(report.breaches)
    assert "serving_plot" in event.metadata
    stored = pl.read_parquet(settings.lake_dir / "serving_metrics" / f"{day}.parquet")
    assert stored.height == 2
