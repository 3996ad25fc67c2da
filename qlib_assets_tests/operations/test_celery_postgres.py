"""The daily graph on PostgreSQL storage through two Celery workers equals the embedded run.

Real servers: PostgreSQL at 127.0.0.1:5432 (trust auth, user postgres) and RabbitMQ at
127.0.0.1:5672 (guest/guest). A fresh pair of databases is created and dropped per test run;
the two workers are stopped at the end.
"""

import uuid
from datetime import date
from pathlib import Path

import dagster as dg
import pytest
import yaml
from mlflow import MlflowClient

from qlib_assets.calendar import sessions
from qlib_assets.instance import embedded_instance
from qlib_assets.market.synthetic import MarketSpec, generate_market, write_landing
from qlib_assets.models.specs import load_specs
from qlib_assets.models.tracking import experiment_name
from qlib_assets.operations.daily_graph import QUICK_SPEC as SPEC
from qlib_assets.operations.daily_graph import daily_graph_stages, write_quick_spec
from qlib_assets.operations.launch import execute_range
from qlib_assets.operations.services import (
    ADMIN_URL,
    BROKER_URL,
    celery_workers,
    reachable,
    temporary_databases,
)
from qlib_assets.orchestration import materialize_partition, materialize_range
from qlib_assets.settings import Settings, load_settings

START, END = date(2021, 1, 4), date(2021, 9, 30)
DAYS = sessions("XSHG", START, END)
MARKET = MarketSpec(instruments=40, start=START, end=END, seed=11, effect_strength=0.15)


def _require_servers() -> None:
    if not reachable(ADMIN_URL, 5432):
        pytest.skip("PostgreSQL is not reachable at 127.0.0.1:5432; the scale-out test needs it")
    if not reachable(BROKER_URL, 5672):
        pytest.skip("RabbitMQ is not reachable at 127.0.0.1:5672; the Celery test needs it")


def _lake_files(settings: Settings) -> dict[str, bytes]:
    root = settings.lake_dir
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.parquet"))}


def _model_metrics(settings: Settings) -> list[dict[str, float]]:
    client = MlflowClient(settings.mlflow_uri)
    spec = load_specs(settings.specs_dir)[SPEC]
    experiment = client.get_experiment_by_name(experiment_name(spec))
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    return [run.data.metrics for run in runs]


@pytest.mark.slow
def test_daily_graph_on_postgres_and_celery_equals_embedded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _require_servers()
    market = generate_market(MARKET)
    specs = write_quick_spec(tmp_path / "specs")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))

    embedded = Settings(home=tmp_path / "embedded", start_date=START, specs_dir=specs)
    write_landing(market, embedded.landing_dir)
    from qlib_assets.defs.build import build_definitions

    defs = build_definitions(embedded)
    with dg.instance_for_test() as instance:
        for stage in daily_graph_stages(embedded, DAYS):
            if stage.last is None:
                result = materialize_partition(defs, instance, stage.assets[0], stage.first)
            else:
                result = materialize_range(
                    defs, instance, list(stage.assets), stage.first, stage.last, log_level="ERROR"
                )
            assert result.success, stage

    with temporary_databases(ADMIN_URL, "dagster", "mlflow") as urls:
        config = tmp_path / "scale.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "home": str(tmp_path / "scale"),
                    "start_date": START.isoformat(),
                    "specs_dir": str(specs),
                    "operations": {
                        "instance": "postgres",
                        "executor": "celery",
                        "postgres_url": urls["dagster"],
                        "mlflow_tracking_uri": urls["mlflow"],
                        "celery_broker": BROKER_URL,
                        "celery_queue": f"qa-{uuid.uuid4().hex[:8]}",
                    },
                }
            )
        )
        monkeypatch.setenv("QLIB_ASSETS_CONFIG", str(config))
        scale = load_settings()
        write_landing(market, scale.landing_dir)
        instance = embedded_instance(scale)
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        workers_seen: set[str] = set()
        with celery_workers(
            scale.operations, 2, {"QLIB_ASSETS_CONFIG": str(config)}, tmp_path
        ) as workers:
            assert len(workers) == 2
            for stage in daily_graph_stages(scale, DAYS):
                result = execute_range(instance, stage.assets, stage.first, stage.last)
                assert result.success, (stage, _failure(result))
                workers_seen |= _celery_workers_of(instance, result.run_id)
        instance.dispose()
        scale_files, scale_metrics = _lake_files(scale), _model_metrics(scale)

    assert len(workers_seen) == 2, workers_seen
    embedded_files = _lake_files(embedded)
    assert {"raw_bars", "alpha158", "labels", f"predictions_{SPEC}", "signal"} <= {
        name.split("/")[0] for name in embedded_files
    }
    assert scale_files.keys() == embedded_files.keys()
    different = [name for name in embedded_files if scale_files[name] != embedded_files[name]]
    assert not different, different[:5]
    embedded_metrics = _model_metrics(embedded)
    assert len(embedded_metrics) == 1
    assert scale_metrics == embedded_metrics


def _failure(result: dg.JobExecutionResult) -> list[str]:
    return [str(e.message) for e in result.all_events if e.is_failure]


def _celery_workers_of(instance: dg.DagsterInstance, run_id: str) -> set[str]:
    """The worker hostnames that reported executing a step of the run."""
    seen = set()
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is None or event.event_type_value != "ENGINE_EVENT":
            continue
        metadata = event.engine_event_data.metadata if event.engine_event_data else {}
        if "Celery worker" in metadata:
            seen.add(str(metadata["Celery worker"].value))
    return seen
