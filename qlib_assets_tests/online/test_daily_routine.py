"""The daily_routine schedule: the session's runs, the lagged runs, and retrains when due."""

from datetime import datetime
from zoneinfo import ZoneInfo

import dagster as dg
import polars as pl

from qlib_assets.calendar import sessions
from qlib_assets.defs.build import build_definitions
from qlib_assets.models.platform import spec_windows
from qlib_assets.models.specs import load_specs
from qlib_assets.settings import Settings
from qlib_assets.storage.lake import Lake

SHANGHAI = ZoneInfo("Asia/Shanghai")


def _evaluate(settings: Settings, when: datetime) -> list[dg.RunRequest] | dg.SkipReason:
    defs = build_definitions(settings)
    schedule = defs.resolve_schedule_def("daily_routine")
    with dg.instance_for_test() as instance:
        context = dg.build_schedule_context(
            instance=instance,
            scheduled_execution_time=when,
            repository_def=defs.get_repository_def(),
        )
        return schedule.evaluate_tick(context).run_requests or dg.SkipReason("none")


def test_session_runs_and_lagged_runs(settings: Settings) -> None:
    requests = _evaluate(settings, datetime(2024, 7, 23, 17, 30, tzinfo=SHANGHAI))
    assert isinstance(requests, list)
    by_partition = {
        r.partition_key: {k.to_user_string() for k in r.asset_selection} for r in requests
    }
    assert {"raw_bars", "alpha158", "signal"} <= by_partition["2024-07-23"]
    assert by_partition["2024-07-19"] == {"labels", "signal_analysis"}
    assert not any(key.startswith("model_") for keys in by_partition.values() for key in keys)


def test_no_session_no_runs(settings: Settings) -> None:
    result = _evaluate(settings, datetime(2024, 10, 3, 17, 30, tzinfo=SHANGHAI))
    assert isinstance(result, dg.SkipReason)


def test_retrain_requested_when_a_window_has_its_labels(settings: Settings) -> None:
    spec = load_specs()["lgbm_alpha158"]
    window = spec_windows(settings, spec)[0]
    labelled = list(sessions("XSHG", settings.start_date, window.data_end))
    empty = pl.DataFrame(
        schema={"instrument": pl.String(), "date": pl.Date(), "label": pl.Float32()}
    )
    defs = build_definitions(settings)
    with dg.instance_for_test() as instance:
        sensor = defs.resolve_sensor_def("rolling_retrain_sensor")
        context = dg.build_sensor_context(instance=instance, definitions=defs)
        assert not sensor(context).run_requests
        Lake(settings.lake_dir).write_days("labels", empty, labelled)
        requests = sensor(context).run_requests
    retrains = [r for r in requests if r.job_name == "train_lgbm_alpha158"]
    assert [r.partition_key for r in retrains] == [window.key]
