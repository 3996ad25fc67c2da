"""Cost report arithmetic, waste findings from a real instance, task statuses of windows."""

from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from qlib_assets.defs.metering import STORE_PARAM, OperationsStoreResource, metered
from qlib_assets.defs.operations import build_operations_defs
from qlib_assets.operations.accounting import ResourceUsage
from qlib_assets.operations.config import Prices
from qlib_assets.operations.cost import cost_report, folder_sizes
from qlib_assets.operations.store import StepIdentity, operations_store, operations_url
from qlib_assets.operations.tasks import overall_status, window_statuses
from qlib_assets.operations.waste import find_waste
from qlib_assets.settings import Settings

PRICES = Prices(cpu_hour=2.0, gb_hour=0.5, storage_gb_month=3.0)


def _usage(asset: str, cpu: float, mb: float, wall: float, spec: str | None, day: int) -> dict:
    return {
        "run_id": "r",
        "step_key": asset,
        "asset": asset,
        "spec": spec,
        "first_partition": None,
        "last_partition": None,
        "partitions": 1,
        "host": "h",
        "run_kind": None,
        "cpu_seconds": cpu,
        "peak_memory_mb": mb,
        "wall_seconds": wall,
        "bytes_written": 10,
        "at": datetime(2026, 3, day, 12, tzinfo=UTC),
    }


def test_cost_per_asset_spec_and_day(tmp_path: Path) -> None:
    usage = pl.DataFrame(
        [
            _usage("model_a", 3600, 1024, 3600, "a", 1),  # 2.0 CPU + 0.5 memory
            _usage("alpha158", 1800, 2048, 1800, None, 1),  # 1.0 CPU + 0.5 memory
            _usage("model_a", 0, 0, 0, "a", 2),
        ]
    )
    lake = tmp_path / "lake"
    (lake / "alpha158").mkdir(parents=True)
    (lake / "alpha158" / "d.parquet").write_bytes(b"x" * 2**20)
    report = cost_report(usage, folder_sizes(lake), PRICES)
    by_asset = dict(report.by_asset.select("asset", "cost").iter_rows())
    assert by_asset == pytest.approx({"model_a": 2.5, "alpha158": 1.5})
    assert dict(report.by_spec.select("spec", "cost").iter_rows()) == pytest.approx({"a": 2.5})
    storage_day = 3.0 / 1024 / 30
    days = report.by_day.sort("day")
    assert days.get_column("cost").to_list() == pytest.approx([4.0 + storage_day, storage_day])
    assert days.get_column("trend").to_list() == pytest.approx(
        [4.0 + storage_day, 2.0 + storage_day]
    )


def test_cost_report_asset_writes_tables_and_plot(settings: Settings) -> None:
    store = operations_store(settings.operations, settings.root)
    for asset, cpu in (("raw_bars", 12.0), ("model_x", 40.0)):
        store.record_usage(
            StepIdentity(
                "r1", asset, asset, ("2024-01-02",), spec="x" if "model" in asset else None
            ),
            ResourceUsage(cpu_seconds=cpu, peak_memory_mb=500, wall_seconds=cpu * 1.1),
        )
    defs = build_operations_defs(settings)
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [defs.resolve_assets_def("cost_report")], instance=instance, resources=defs.resources
        )
    metadata = result.asset_materializations_for_node("cost_report")[0].metadata
    assert metadata["steps_measured"].value == 2
    assert metadata["total_cost"].value > 0
    folder = settings.root / "reports" / "operations"
    assert (folder / "cost.png").stat().st_size > 10_000
    by_asset = pl.read_csv(folder / "cost_by_asset.csv")
    assert by_asset.get_column("asset").to_list() == ["model_x", "raw_bars"]


def test_waste_finds_repeats_identical_outputs_idle_steps_and_unread_features(
    settings: Settings,
) -> None:
    @dg.asset(code_version="1", partitions_def=dg.StaticPartitionsDefinition(["p"]))
    @metered
    def stable(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata={"sha256": "same"})

    @dg.asset(partitions_def=dg.StaticPartitionsDefinition(["p"]))
    def copied(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata={"sha256": "same"})

    store = operations_store(settings.operations, settings.root)
    store.record_usage(
        StepIdentity("r", "slow", "indicators"),
        ResourceUsage(cpu_seconds=0.5, peak_memory_mb=10, wall_seconds=30),
    )
    (settings.lake_dir / "indicators").mkdir(parents=True)
    resources = {
        STORE_PARAM: OperationsStoreResource(url=operations_url(settings.operations, settings.root))
    }
    with dg.instance_for_test() as instance:
        for _ in range(2):
            assert dg.materialize(
                [stable], instance=instance, partition_key="p", resources=resources
            ).success
        for _ in range(2):
            assert dg.materialize([copied], instance=instance, partition_key="p").success
        findings = find_waste(instance, settings)
    kinds = dict(findings.select("asset", "kind").iter_rows())
    # A code version and no upstream: the same data version twice means nothing changed.
    assert kinds["stable"] == "unchanged_inputs"
    assert kinds["copied"] == "identical_output"
    idle = findings.filter(pl.col("kind") == "idle_step")
    assert idle.get_column("asset").to_list() == ["indicators"]
    # The shipped specs read alpha158 and indicators, so both are read; none is unread.
    assert findings.filter(pl.col("kind") == "unread_feature").height == 0
    assert findings.get_column("suggestion").str.len_chars().min() > 20


def test_rolling_backfill_with_a_failed_window_reads_part_done() -> None:
    windows = dg.StaticPartitionsDefinition(["w1", "w2", "w3"])

    @dg.asset(partitions_def=windows)
    def model_x(context: dg.AssetExecutionContext) -> None:
        if context.partition_key == "w2":
            raise RuntimeError("window w2 did not converge")

    with dg.instance_for_test() as instance:
        assert window_statuses(instance, "model_x", windows).overall == "waiting"
        dg.materialize([model_x], instance=instance, partition_key="w1")
        assert window_statuses(instance, "model_x", windows).overall == "running"
        for key in ("w2", "w3"):
            dg.materialize([model_x], instance=instance, partition_key=key, raise_on_error=False)
        statuses = window_statuses(instance, "model_x", windows)
    assert statuses.windows == {"w1": "done", "w2": "failed", "w3": "done"}
    assert statuses.overall == "part_done"
    assert statuses.counts() == {"done": 2, "failed": 1}


@pytest.mark.parametrize(
    ("values", "overall"),
    [
        (["done", "done"], "done"),
        (["done", "failed"], "part_done"),
        (["failed"], "failed"),
        (["waiting", "waiting"], "waiting"),
        (["waiting", "running"], "running"),
        (["waiting", "done"], "running"),
        ([], "waiting"),
    ],
)
def test_overall_status(values: list[str], overall: str) -> None:
    assert overall_status(values) == overall


def test_tasks_command_lists_each_spec(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from qlib_assets.cli import main

    monkeypatch.setenv("QLIB_ASSETS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    assert main(["tasks", "--spec", "lgbm_alpha158"]) == 0
    out = capsys.readouterr().out
    assert "model_lgbm_alpha158: waiting" in out
    assert main(["tasks", "--spec", "nope"]) == 2
