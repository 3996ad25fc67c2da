"""Step measurement: known work shows up in the figures, and in metadata and resource_usage."""

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
import pytest

from qlib_assets.defs.metering import STORE_PARAM, OperationsStoreResource, metered
from qlib_assets.operations.accounting import measure
from qlib_assets.operations.daily_graph import busy_seconds
from qlib_assets.operations.store import operations_store, operations_url
from qlib_assets.settings import Settings

# psutil reads CPU time in clock ticks (10 ms); process_time() is exact.
TICKS = 0.03


def _spin(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def test_measure_sees_cpu_memory_time_and_writes(tmp_path: Path) -> None:
    with measure() as usage:
        block = np.ones(48 * 2**20, dtype=np.float64)  # 384 MB, touched
        (tmp_path / "out.bin").write_bytes(b"x" * 5_000_000)
        _spin(0.3)
        del block
    assert usage.cpu_seconds >= 0.3 - TICKS
    assert usage.wall_seconds >= usage.cpu_seconds * 0.5
    assert usage.bytes_written >= 5_000_000
    with measure() as idle:
        time.sleep(0.2)
    assert usage.peak_memory_mb >= idle.peak_memory_mb + 300
    assert idle.cpu_seconds < 0.15
    assert idle.bytes_written < 100_000


def test_metered_asset_records_metadata_and_a_usage_row(settings: Settings) -> None:
    @dg.asset(partitions_def=dg.StaticPartitionsDefinition(["a", "b"]), tags={"spec": "s1"})
    @metered
    def busy(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        _spin(0.2)
        return dg.MaterializeResult(metadata={"rows": 3})

    store = OperationsStoreResource(url=operations_url(settings.operations, settings.root))
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [busy],
            instance=instance,
            partition_key="b",
            tags={"qlib_assets/kind": "tuning"},
            resources={STORE_PARAM: store},
        )
    assert result.success
    metadata = result.asset_materializations_for_node("busy")[0].metadata
    assert metadata["rows"].value == 3
    assert metadata["cpu_seconds"].value >= 0.2 - TICKS
    assert {"peak_memory_mb", "wall_seconds", "bytes_written"} <= metadata.keys()
    rows = operations_store(settings.operations, settings.root).usage()
    assert rows.height == 1
    row = rows.row(0, named=True)
    assert (row["run_id"], row["asset"], row["spec"]) == (result.run_id, "busy", "s1")
    assert (row["first_partition"], row["partitions"], row["run_kind"]) == ("b", 1, "tuning")
    assert row["cpu_seconds"] == metadata["cpu_seconds"].value


def test_busy_seconds_is_the_union_of_step_intervals() -> None:
    end = datetime(2026, 1, 5, 12, 0, 10, tzinfo=UTC)
    usage = pl.DataFrame(
        {
            # [0, 10] and [5, 8] overlap; [20, 23] stands alone: 13 s busy out of 23.
            "at": [end, end - timedelta(seconds=2), end + timedelta(seconds=13)],
            "wall_seconds": [10.0, 3.0, 3.0],
        }
    )
    assert busy_seconds(usage) == pytest.approx(13.0)
    assert busy_seconds(usage.head(0)) == 0.0


def test_a_failed_step_is_recorded_too(settings: Settings) -> None:
    @dg.asset
    @metered
    def broken(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        _spin(0.1)
        raise RuntimeError("no")

    store = OperationsStoreResource(url=operations_url(settings.operations, settings.root))
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [broken], instance=instance, resources={STORE_PARAM: store}, raise_on_error=False
        )
    assert not result.success
    rows = operations_store(settings.operations, settings.root).usage()
    assert rows.get_column("asset").to_list() == ["broken"]
    assert rows.get_column("cpu_seconds")[0] >= 0.1 - TICKS
