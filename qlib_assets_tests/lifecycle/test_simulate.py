"""simulate replays sessions one at a time; what it served equals a backfill of those sessions."""

from datetime import date

import polars as pl
import pytest

from qlib_assets.cli import main
from qlib_assets.lifecycle.served import serve_predictions
from qlib_assets.lifecycle.simulate import simulate
from qlib_assets.models.platform import spec_windows
from qlib_assets.settings import Settings
from qlib_assets_tests.lifecycle.conftest import Template


@pytest.mark.slow
def test_simulate_trains_gates_promotes_and_equals_the_backfill(
    home: Settings, template: Template
) -> None:
    spec = template.spec
    windows = spec_windows(home, spec)
    first = windows[0].test[0]
    days = [d for d in template.market.sessions if d >= first][:48]
    result = simulate(home, days[0], days[-1])
    track = result.track
    assert track.height == len(days) and track["served_version"].null_count() == 0
    assert set(track["decided_by"].to_list()) == {"promotion"}
    events = "\n".join(result.events)
    # The first window at the start, the next one in time for its first test session.
    assert f"(window {windows[0].key}) promoted" in events, events
    second = [e for e in result.events if f"(window {windows[1].key}) promoted" in e]
    assert second and date.fromisoformat(second[0][:10]) < windows[1].test[0], events
    boundary = windows[1].test[0]
    served = track.select("date", "served_version").rows()
    assert {v for d, v in served if d < boundary} != {v for d, v in served if d >= boundary}
    assert track.filter(pl.col("date") <= days[-3])["ic"].null_count() == 0
    assert (result.settings.root / "track_record.parquet").is_file()

    backfill = serve_predictions(result.settings, spec, days).frame
    assert backfill.equals(result.served[spec.name])


@pytest.mark.slow
def test_simulate_cli_prints_the_track_record(
    home: Settings,
    template: Template,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("QLIB_ASSETS_HOME", str(home.root))
    monkeypatch.setenv("QLIB_ASSETS_SPECS_DIR", str(home.specs_dir))
    monkeypatch.setenv("QLIB_ASSETS_START_DATE", home.start_date.isoformat())
    first = spec_windows(home, template.spec)[0].test[0]
    days = [d for d in template.market.sessions if d >= first][:5]
    assert main(["simulate", "--start", days[0].isoformat(), "--end", days[-1].isoformat()]) == 0
    out = capsys.readouterr().out
    assert "track record" in out and "promoted" in out
