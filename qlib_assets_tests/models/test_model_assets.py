"""Each shipped spec trains through Dagster on a small generated market, with full tracking."""

import json
from datetime import date
from pathlib import Path

import dagster as dg
import mlflow
import numpy as np
import polars as pl
import pytest

from qlib_assets.calendar import sessions
from qlib_assets.cli import main
from qlib_assets.defs.build import build_definitions
from qlib_assets.market.synthetic import MarketSpec, generate_market, write_landing
from qlib_assets.models.platform import audit_log, spec_windows
from qlib_assets.models.registry import ModelRegistry
from qlib_assets.models.rolling import Window
from qlib_assets.models.specs import load_specs
from qlib_assets.orchestration import materialize_range
from qlib_assets.settings import LifecycleSettings, Settings
from qlib_assets.storage.lake import Lake

START, END = date(2021, 1, 4), date(2023, 9, 29)
DAYS = sessions("XSHG", START, END)


@pytest.fixture(scope="module")
def trained_home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, dg.DagsterInstance]:
    """Market -> raw_bars -> features -> labels through Dagster, once for the module."""
    # Manual promotion: every version is gated and waits as the challenger, so each session is
    # served by its window's model (the rule before any promotion) and the registry CLI can move
    # versions by hand.
    settings = Settings(
        home=tmp_path_factory.mktemp("home"),
        start_date=START,
        lifecycle=LifecycleSettings(default_policy="manual"),
    )
    # Qlib's MLP validates with an IC loss that skips days of fewer than 50 instruments.
    market = generate_market(
        MarketSpec(instruments=60, start=START, end=END, seed=5, effect_strength=0.15)
    )
    write_landing(market, settings.landing_dir)
    defs = build_definitions(settings)
    instance = dg.DagsterInstance.ephemeral()
    first, last = DAYS[0].isoformat(), DAYS[-1].isoformat()
    for assets, end in (
        (["raw_bars", "qlib_dataset", "indicators", "alpha158"], last),
        (["labels"], DAYS[-3].isoformat()),
    ):
        assert materialize_range(defs, instance, assets, first, end, log_level="ERROR").success
    return settings, instance


@pytest.fixture(scope="module")
def trained(
    trained_home: tuple[Settings, dg.DagsterInstance],
) -> dict[str, tuple[Window, dg.ExecuteInProcessResult]]:
    """The first window of every shipped spec, each trained by its own Dagster run."""
    settings, instance = trained_home
    job = build_definitions(settings).resolve_implicit_global_asset_job_def()
    runs = {}
    for name, spec in sorted(load_specs().items()):
        window = next(w for w in spec_windows(settings, spec) if w.test[1] <= END)
        runs[name] = (
            window,
            job.execute_in_process(
                instance=instance,
                asset_selection=[dg.AssetKey(f"model_{name}")],
                partition_key=window.key,
                raise_on_error=False,
            ),
        )
    return runs


@pytest.mark.parametrize("spec_name", sorted(load_specs()))
def test_spec_trains_through_dagster(
    trained_home: tuple[Settings, dg.DagsterInstance],
    trained: dict[str, tuple[Window, dg.ExecuteInProcessResult]],
    spec_name: str,
) -> None:
    settings, _ = trained_home
    window, result = trained[spec_name]
    assert result.success
    asset = f"model_{spec_name}"
    metadata = result.asset_materializations_for_node(asset)[0].metadata
    assert metadata["valid_ic"].value > 0
    assert Path(metadata["report_path"].value).is_file()

    mlflow.set_tracking_uri(settings.mlflow_uri)
    run = mlflow.get_run(metadata["mlflow_run_id"].value)
    assert run.info.status == "FINISHED"
    assert run.data.tags["dagster_run_id"] == result.run_id
    assert run.data.tags["partition_key"] == window.key
    assert run.data.tags["asset_key"] == asset
    assert {i.dataset.name for i in run.inputs.dataset_inputs} >= {"labels"}
    assert run.info.artifact_uri.startswith(settings.mlflow_artifacts.resolve().as_uri())
    registry = ModelRegistry(settings.mlflow_uri, audit_log(settings))
    version = metadata["model_version"].value
    assert metadata["lifecycle_decision"].value == "challenger"
    assert registry.state(spec_name, version) == "validated"
    tags = registry.version(spec_name, version).tags
    assert tags["window"] == window.key and "feature_schema_hash" in tags
    assert tags["gate.failed"] == "none"
    history = registry.history(spec_name, version)
    assert [(h.from_value, h.to_value) for h in history][:2] == [
        (None, "candidate"),
        ("candidate", "validated"),
    ]
    lineage = registry.lineage(spec_name, version)
    assert lineage.landing_files, "lineage reaches the landing files"


def test_online_chain_has_positive_out_of_sample_ic(
    trained_home: tuple[Settings, dg.DagsterInstance],
    trained: dict[str, tuple[Window, dg.ExecuteInProcessResult]],
) -> None:
    """Predictions, signal, analysis and a backtest through Dagster on the trained windows."""
    settings, instance = trained_home
    window = trained["lgbm_alpha158"][0]
    first, last = window.test[0], window.test[1]
    defs = build_definitions(settings)
    online = [f"predictions_{n}" for n in sorted(load_specs())] + ["signal"]
    assert materialize_range(
        defs, instance, online, first.isoformat(), last.isoformat(), log_level="ERROR"
    ).success
    analysis = materialize_range(
        defs, instance, ["signal_analysis"], first.isoformat(), last.isoformat()
    )
    assert analysis.success
    summary = analysis.asset_materializations_for_node("signal_analysis")[0].metadata["summary"]
    assert summary.value["signal"]["ic"] > 0
    assert summary.value["signal"]["sessions"] == len(sessions("XSHG", first, last))
    signal = Lake(settings.lake_dir).read_days("signal", [first])
    assert signal.select(pl.struct("instrument", "date").is_unique().all()).item()

    job = defs.resolve_implicit_global_asset_job_def()
    backtest = job.execute_in_process(
        instance=instance,
        asset_selection=[dg.AssetKey("backtest")],
        run_config={
            "ops": {"backtest": {"config": {"topk": 10, "n_drop": 2, "benchmark": "none"}}}
        },
    )
    assert backtest.success
    metadata = backtest.asset_materializations_for_node("backtest")[0].metadata
    assert metadata["benchmark"].value == "none"
    assert np.isfinite(metadata["annualized_excess_with_cost"].value)


def test_missing_features_fail_with_the_window(
    trained_home: tuple[Settings, dg.DagsterInstance],
) -> None:
    settings, instance = trained_home
    spec = load_specs()["lgbm_alpha158"]
    late = next(w for w in spec_windows(settings, spec) if w.data_end > END)
    defs = build_definitions(settings)
    result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
        instance=instance,
        asset_selection=[dg.AssetKey("model_lgbm_alpha158")],
        partition_key=late.key,
        raise_on_error=False,
    )
    assert not result.success
    error = str(next(e for e in result.all_events if e.is_step_failure).step_failure_data.error)
    assert late.key in error and "not materialized" in error


def test_models_cli(
    trained_home: tuple[Settings, dg.DagsterInstance],
    trained: dict[str, tuple[Window, dg.ExecuteInProcessResult]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings, _ = trained_home
    monkeypatch.setenv("QLIB_ASSETS_HOME", str(settings.root))
    monkeypatch.setenv("QLIB_ASSETS_START_DATE", START.isoformat())

    def run(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        out = capsys.readouterr()
        return code, out.out, out.err

    code, out, _ = run("models", "list", "--json")
    assert code == 0 and {m["model"] for m in json.loads(out)} == set(load_specs())
    code, out, _ = run("models", "search", "--metric", "valid_ic", "--min", "0", "--json")
    assert code == 0 and len(json.loads(out)) == len(load_specs())
    code, out, _ = run("models", "show", "lgbm_alpha158", "1", "--json")
    assert json.loads(out)["state"] == "validated"
    code, out, _ = run("models", "lineage", "lgbm_alpha158", "1", "--json")
    assert "alpha158" in json.loads(out)["partitions"]

    code, _, err = run("models", "transition", "lgbm_alpha158", "1", "production", "--reason", "x")
    assert code == 2 and "not allowed" in err
    code, out, _ = run("models", "history", "lgbm_alpha158", "--json")
    assert [h["to_value"] for h in json.loads(out)] == ["candidate", "validated", "1"]

    code, _, _ = run("models", "transition", "lgbm_alpha158", "1", "staging", "--reason", "IC ok")
    assert code == 0
    code, _, _ = run(
        "models", "transition", "lgbm_alpha158", "1", "--alias", "challenger", "--reason", "try"
    )
    assert code == 0
    code, out, _ = run("models", "history", "lgbm_alpha158", "--json")
    assert [(h["kind"], h["to_value"]) for h in json.loads(out)][3:] == [
        ("state", "staging"),
        ("alias", "1"),
    ]


def test_decay_breach_requests_one_retrain(
    trained_home: tuple[Settings, dg.DagsterInstance],
    trained: dict[str, tuple[Window, dg.ExecuteInProcessResult]],
) -> None:
    """An IC floor no model can reach makes every spec breach: one retrain each, then none."""
    base, instance = trained_home
    settings = base.model_copy(
        update={"monitoring": base.monitoring.model_copy(update={"decay_floor": 0.9})}
    )
    window = trained["lgbm_alpha158"][0]
    first, last = window.test[0].isoformat(), window.test[1].isoformat()
    defs = build_definitions(settings)
    online = [f"predictions_{n}" for n in sorted(load_specs())]
    assert materialize_range(defs, instance, online, first, last, log_level="ERROR").success
    decay = materialize_range(defs, instance, ["performance_decay"], last, last, log_level="ERROR")
    (check,) = decay.get_asset_check_evaluations()
    assert check.check_name == "ic_decay" and not check.passed
    metadata = decay.asset_materializations_for_node("performance_decay")[0].metadata
    breached = sorted(metadata["breached"].value.split(", "))
    # Specs whose online model covers the session: the xgb spec trained only a March window.
    assert breached == ["lgbm_alpha158", "linear_alpha158", "mlp_alpha158"]

    audit = audit_log(settings)
    before = audit.count()
    sensor = defs.resolve_sensor_def("monitoring_retrain_sensor")
    first_tick = sensor(dg.build_sensor_context(instance=instance, definitions=defs))
    jobs = sorted(r.job_name for r in first_tick.run_requests)
    assert jobs == [f"retrain_{n}" for n in breached]
    rows = audit.history("lgbm_alpha158")[-1:]
    assert audit.count() == before + len(breached) and rows[0].kind == "retrain"
    assert "below bound" in rows[0].reason and rows[0].evidence["kind"] == "decay"

    again = sensor(
        dg.build_sensor_context(instance=instance, cursor=first_tick.cursor, definitions=defs)
    )
    assert not again.run_requests and audit.count() == before + len(breached)
