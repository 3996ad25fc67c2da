"""`qlib-assets data ...` on a real home, and the run id a Dagster materialization records."""

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest

from qlib_assets.cli import main
from qlib_assets.defs.daily import LakeResource
from qlib_assets.settings import Settings
from qlib_assets.storage.lake import Lake
from qlib_assets_tests.storage.test_qlib_bin import DAYS, make_bars


@pytest.fixture
def home(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("QLIB_ASSETS_HOME", str(settings.root))
    lake = Lake(settings.lake_dir, run_id="first")
    lake.write_days("raw_bars", make_bars(DAYS[:4], seed=1), DAYS[:4])
    Lake(settings.lake_dir, run_id="second").write_days(
        "raw_bars", make_bars(DAYS[2:3], seed=2), DAYS[2:3]
    )
    return settings


def test_history_lists_versions(home: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "history", "raw_bars", DAYS[2].isoformat(), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["run_id"], r["state"]) for r in rows] == [
        ("first", "superseded"),
        ("second", "current"),
    ]


def test_restore_writes_a_new_folder(
    home: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    now = datetime.now(UTC).isoformat()
    assert main(["data", "restore", "--as-of", now, "--to", str(tmp_path / "r"), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["partitions"] == {"raw_bars": 4} and payload["provider_sessions"] == 4
    assert (tmp_path / "r" / "qlib_data" / "calendars" / "day.txt").is_file()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["data", "history", "nope", "2024-01-05"], "unknown asset 'nope'"),
        (["data", "history", "raw_bars", "2023-01-05"], "no recorded version of partition"),
        (["data", "restore", "--as-of", "2000-01-01T00:00:00"], "before the first recorded"),
        (["data", "restore", "--as-of", "2100-01-01", "--in-place"], "--in-place needs --reason"),
    ],
)
def test_bad_input_is_a_clear_error_and_changes_nothing(
    home: Settings, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    before = sorted(p for p in home.root.rglob("*") if "index.sqlite" not in p.name)
    assert main(argv) == 2
    assert message in capsys.readouterr().err.replace("\n", "")
    assert sorted(p for p in home.root.rglob("*") if "index.sqlite" not in p.name) == before


def test_busy_target_is_refused(home: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    busy = home.root / "busy"
    busy.mkdir()
    (busy / "mine.txt").write_text("keep")
    later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assert main(["data", "restore", "--as-of", later, "--to", str(busy)]) == 2
    assert "not an empty folder" in capsys.readouterr().err.replace("\n", "")
    assert [p.name for p in busy.iterdir()] == ["mine.txt"]


def test_a_dagster_run_is_recorded_as_the_writer(tmp_path: Path) -> None:
    """Through the lake resource, and through a library function's own ``Lake``."""
    bars = make_bars(DAYS[:2], seed=1)

    @dg.asset
    def by_resource(lake: LakeResource) -> None:
        lake.write_days("raw_bars", bars, DAYS[:1])

    @dg.asset
    def by_library() -> None:
        Lake(tmp_path / "lake").write_days("raw_bars", bars, DAYS[1:2])

    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [by_resource, by_library],
            instance=instance,
            resources={"lake": LakeResource(root=str(tmp_path / "lake"))},
        )
    store = Lake(tmp_path / "lake").versions
    assert [store.history("raw_bars", day)[0].run_id for day in DAYS[:2]] == [result.run_id] * 2
