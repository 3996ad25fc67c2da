"""What the daily routine runs after a session closes (seed 001's scheduled update mode)."""

from dataclasses import dataclass
from datetime import date

from qlib_assets.asset_keys import model_asset
from qlib_assets.calendar import is_session, shift_sessions
from qlib_assets.features.tables import LABEL_HORIZON
from qlib_assets.models.rolling import Window
from qlib_assets.models.window_training import platform_specs, spec_windows
from qlib_assets.online.tables import SIGNAL, online_model_uris, predictions_asset
from qlib_assets.settings import Settings
from qlib_assets.storage.lake import Lake

SESSION_ASSETS = ("raw_bars", "qlib_dataset", "indicators", "alpha158")
LAGGED_ASSETS = ("labels", "signal_analysis")


@dataclass(frozen=True)
class RoutineRequest:
    assets: tuple[str, ...]
    partition: str
    reason: str


def daily_routine_requests(settings: Settings, day: date) -> list[RoutineRequest]:
    """The runs for session ``day``: its data, features, predictions and signal; labels and
    signal analysis of the session two back (they need its two following sessions)."""
    if not is_session(settings.calendar, day):
        return []
    predictions = tuple(predictions_asset(name) for name in platform_specs(settings))
    lagged = shift_sessions(settings.calendar, day, -LABEL_HORIZON)
    return [
        RoutineRequest(
            (*SESSION_ASSETS, *predictions, SIGNAL), day.isoformat(), f"session {day} closed"
        ),
        RoutineRequest(LAGGED_ASSETS, lagged.isoformat(), f"labels of {lagged} complete"),
    ]


def _labelled_windows(settings: Settings, spec_name: str, labelled: set[date]) -> list[Window]:
    """The spec's windows whose train and valid labels are all materialized."""
    windows = spec_windows(settings, platform_specs(settings)[spec_name])
    return [w for w in windows if w.data_end in labelled]


def due_retrains(settings: Settings) -> list[RoutineRequest]:
    """A rolling step per spec: the first window that has every train and valid label
    materialized but no registered model yet, and whose test segment has not ended."""
    labelled = set(Lake(settings.lake_dir).days("labels"))
    if not labelled:
        return []
    latest = max(labelled)
    requests = []
    for name, spec in platform_specs(settings).items():
        trained = online_model_uris(settings, spec)
        ready = [
            w
            for w in _labelled_windows(settings, name, labelled)
            if w.test[1] > latest and w.key not in trained
        ]
        if ready:
            requests.append(
                RoutineRequest(
                    (model_asset(name),),
                    ready[0].key,
                    f"rolling step: window {ready[0].key} of {spec.ref} has its labels",
                )
            )
    return requests


def latest_trainable_window(settings: Settings, spec_name: str) -> Window | None:
    """The newest window whose train and valid labels are all materialized."""
    ready = _labelled_windows(settings, spec_name, set(Lake(settings.lake_dir).days("labels")))
    return ready[-1] if ready else None
