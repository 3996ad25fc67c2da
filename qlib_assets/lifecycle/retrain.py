"""A performance-triggered retrain that changes something: a new window, not a refit.

The retrain window's valid segment ends at the latest session with a known label and its test
segment starts ``trunc_days`` sessions later, exactly as a rolling window laid out at that test
start (``rolling_windows``), so no label reaches into the test segment; an expanding spec keeps
its first train start. The new version goes through the same gates and promotion policy as a
rolling window's.
"""

from collections.abc import Mapping
from dataclasses import dataclass, replace

from qlib_assets.lifecycle.policies import Decision, review_candidate
from qlib_assets.models.dataset import load_window_frame, window_days
from qlib_assets.models.platform import audit_log, platform_sessions, spec_windows
from qlib_assets.models.rolling import Window, rolling_windows
from qlib_assets.models.specs import ModelSpec
from qlib_assets.models.tracking import TrackedWindow, train_and_track
from qlib_assets.settings import Settings
from qlib_assets.storage.lake import Lake

ACTOR = "retrain"


@dataclass(frozen=True)
class Retrained:
    window: Window
    tracked: TrackedWindow
    decision: Decision


def retrain_window(settings: Settings, spec: ModelSpec) -> Window:
    """The window whose valid segment ends at the latest labelled session."""
    labelled = Lake(settings.lake_dir).days(spec.label.asset)
    if not labelled:
        raise FileNotFoundError(f"{spec.ref}: no label is materialized; nothing to retrain on")
    calendar = platform_sessions(settings)
    index = calendar.index(labelled[-1]) + spec.rolling.trunc_days
    if index >= len(calendar):
        raise ValueError(f"{spec.ref}: the calendar ends before a test start after {labelled[-1]}")
    start = calendar[index]
    window = rolling_windows(spec.rolling, calendar, last_day=start, first_test_start=start)[0]
    if spec.rolling.type == "expanding":
        first = spec_windows(settings, spec)[0]
        window = replace(window, train=(first.train[0], window.train[1]))
    return window


def retrain(
    settings: Settings,
    spec: ModelSpec,
    reason: str,
    run_tags: Mapping[str, str] | None = None,
) -> Retrained:
    """Train the retrain window, register it as a candidate, then gates and policy."""
    window = retrain_window(settings, spec)
    days = window_days(window, platform_sessions(settings))
    data = load_window_frame(Lake(settings.lake_dir), spec, days)
    tracked = train_and_track(
        spec,
        window,
        data,
        tracking_uri=settings.mlflow_uri,
        audit=audit_log(settings),
        run_tags={"retrain_reason": reason[:500], **dict(run_tags or {})},
        actor=ACTOR,
        artifact_root=settings.mlflow_artifacts,
    )
    decision = review_candidate(settings, spec, tracked.model_version, actor=ACTOR)
    return Retrained(window, tracked, decision)
