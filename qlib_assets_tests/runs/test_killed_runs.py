"""A run SIGKILLed inside or around the provider write never blocks the next one."""

import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import dagster as dg
import pytest

from qlib_assets.defs.build import build_definitions
from qlib_assets.instance import embedded_instance
from qlib_assets.market.synthetic import MarketSpec, generate_market, write_landing
from qlib_assets.orchestration import materialize_range
from qlib_assets.settings import LandingSettings, Settings
from qlib_assets.storage.qlib_bin import LOCK_NAME
from qlib_assets.storage.qlib_journal import JOURNAL_DIR

REPO = Path(__file__).resolve().parents[2]
START, END = "2024-01-02", "2024-01-12"
ASSETS = ["raw_bars", "qlib_dataset"]


def _home(root: Path) -> Settings:
    settings = Settings(
        home=root, start_date=date(2024, 1, 2), landing=LandingSettings(settle_seconds=0)
    )
    settings.ensure_dirs()
    market = generate_market(
        MarketSpec(instruments=6, start=date(2024, 1, 2), end=date(2024, 1, 12), seed=5)
    )
    write_landing(market, settings.landing_dir, "parquet", "per-day")
    return settings


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != LOCK_NAME
    }


def _kill_run(settings: Settings, point: str) -> int:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "QLIB_ASSETS_HOME": str(settings.root),
        "QLIB_ASSETS_START_DATE": settings.start_date.isoformat(),
        "QLIB_ASSETS_LANDING__SETTLE_SECONDS": "0",
    }
    child = subprocess.run(
        [sys.executable, "-m", "qlib_assets_tests.runs.kill_child", point, START, END],
        cwd=REPO,
        env=env,
        capture_output=True,
        timeout=240,
    )
    return child.returncode


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, bytes]]:
    """The lake and provider of an uninterrupted run."""
    settings = _home(tmp_path_factory.mktemp("reference"))
    with dg.instance_for_test() as instance:
        assert materialize_range(build_definitions(settings), instance, ASSETS, START, END).success
    return {"lake": _tree(settings.lake_dir), "provider": _tree(settings.qlib_data_dir)}


def _check_recovery(settings: Settings, reference: dict[str, dict[str, bytes]]) -> None:
    instance = embedded_instance(settings)  # fails the dead run and frees its slot
    runs = instance.get_runs()
    assert len(runs) == 1 and runs[0].status == dg.DagsterRunStatus.FAILURE
    assert not instance.event_log_storage.get_concurrency_run_ids()
    result = materialize_range(build_definitions(settings), instance, ASSETS, START, END)
    assert result.success
    assert _tree(settings.lake_dir) == reference["lake"]
    assert _tree(settings.qlib_data_dir) == reference["provider"]
    assert not list(settings.root.rglob("*.tmp"))
    # Dagster's records agree with the files: every partition is materialized by the new run.
    materialized = instance.get_materialized_partitions(dg.AssetKey("qlib_dataset"))
    assert materialized == {p.stem for p in (settings.lake_dir / "raw_bars").glob("*.parquet")}


@pytest.mark.slow
@pytest.mark.parametrize("point", ["features_written"])
def test_killed_inside_the_journal_then_next_run_completes(
    tmp_path: Path, reference: dict[str, dict[str, bytes]], point: str
) -> None:
    settings = _home(tmp_path / "home")
    assert _kill_run(settings, point) == -9
    assert (settings.qlib_data_dir / JOURNAL_DIR / "manifest.json").is_file()
    _check_recovery(settings, reference)


@pytest.mark.slow
@pytest.mark.parametrize("point", ["lake_written", "journal_begun", "committed"])
def test_killed_around_the_provider_write_then_next_run_completes(
    tmp_path: Path, reference: dict[str, dict[str, bytes]], point: str
) -> None:
    settings = _home(tmp_path / "home")
    assert _kill_run(settings, point) == -9
    _check_recovery(settings, reference)
