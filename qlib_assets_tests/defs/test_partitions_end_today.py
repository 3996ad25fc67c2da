"""Partitions end at the current session; model windows appear once they can be trained;
one setting turns automation off."""

from datetime import UTC, datetime

import dagster as dg

from qlib_assets.calendar import current_session, shift_sessions, trading_days_partitions
from qlib_assets.defs.build import build_definitions
from qlib_assets.models.platform import platform_specs, spec_windows
from qlib_assets.settings import Settings


def test_daily_partitions_end_at_the_current_session(settings: Settings) -> None:
    today = current_session(settings.calendar)
    keys = trading_days_partitions(settings.calendar, settings.start_date).get_partition_keys()
    assert keys[-1] == today.isoformat()
    # A Saturday evening in Shanghai: the current session is that Friday.
    saturday = datetime(2024, 7, 20, 12, tzinfo=UTC)
    assert current_session("XSHG", saturday).isoformat() == "2024-07-19"


def test_model_windows_appear_when_their_labels_can_exist(settings: Settings) -> None:
    last_labelled = shift_sessions(settings.calendar, current_session(settings.calendar), -2)
    for spec in platform_specs(settings).values():
        windows = spec_windows(settings, spec)
        assert windows and all(w.data_end <= last_labelled for w in windows)


def test_one_setting_turns_automation_off(settings: Settings) -> None:
    sensors = ("daily_automation", "rolling_retrain_sensor", "monitoring_retrain_sensor")

    def statuses(s: Settings) -> set[dg.DefaultSensorStatus]:
        defs = build_definitions(s)
        return {defs.resolve_sensor_def(name).default_status for name in sensors}

    assert statuses(settings) == {dg.DefaultSensorStatus.RUNNING}
    off = settings.model_copy(
        update={"automation": settings.automation.model_copy(update={"enabled": False})}
    )
    assert statuses(off) == {dg.DefaultSensorStatus.STOPPED}
