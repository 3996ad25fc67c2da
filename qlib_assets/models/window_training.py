"""One rolling window of one spec: read its partitions from the lake, train, track, register."""

from collections.abc import Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from qlib_assets.calendar import shift_sessions
from qlib_assets.market.raw_bars import ASSET as RAW_BARS_ASSET
from qlib_assets.market.raw_bars import landing_catalog
from qlib_assets.models.audit import AuditLog
from qlib_assets.models.platform import audit_log, platform_sessions, spec_windows
from qlib_assets.models.rolling import Window, window_for_key
from qlib_assets.models.specs import ModelSpec
from qlib_assets.settings import Settings
from qlib_assets.storage.lake import Lake

# Training pulls in Qlib and MLflow; the code location reads specs and windows from this module
# and must not pay for them when it loads.
if TYPE_CHECKING:
    from qlib_assets.models.dataset import WindowFrame
    from qlib_assets.models.qlib_metrics import MetricCallback
    from qlib_assets.models.tracking import TrackedWindow


def _landing_lineage(settings: Settings, days: Sequence[date]) -> dict[str, str]:
    catalog = landing_catalog(settings)
    entries = catalog.scan()
    return {
        str(path): entries[path.relative_to(catalog.landing_dir).as_posix()].sha256
        for path in catalog.files_for(entries, days)
    }


def raw_bars_lineage(lake: Lake, last_day: date) -> dict[str, dict[str, str]]:
    """The current version of every raw_bars partition up to ``last_day``: what a window's
    features (lookbacks, EMA warm-up) and labels (future sessions) were computed from."""
    current = lake.current_versions(RAW_BARS_ASSET)
    return {
        day.isoformat(): {
            "sha256": v.sha256,
            "written_at": v.written_at.isoformat(),
            "run_id": v.run_id,
        }
        for day, v in sorted(current.items())
        if day <= last_day
    }


def window_data(settings: Settings, spec: ModelSpec, key: str) -> "tuple[Window, WindowFrame]":
    """The window with test start ``key`` and its train/valid feature and label frame.

    Every train and valid session must have its partitions materialized; the error names the
    window and the first missing session.
    """
    from qlib_assets.models.dataset import load_window_frame, window_days

    window = window_for_key(spec_windows(settings, spec), key)
    days = window_days(window, platform_sessions(settings))
    lake = Lake(settings.lake_dir)
    for source in [*spec.features, spec.label]:
        present = set(lake.days(source.asset))
        missing = [d for d in days if d not in present]
        if missing:
            raise FileNotFoundError(
                f"{spec.ref} window {key}: {source.asset} is not materialized for "
                f"{len(missing)} session(s) of train/valid {days[0]} .. {days[-1]}, "
                f"e.g. {missing[0]}"
            )
    return window, load_window_frame(lake, spec, days)


def serving_features(settings: Settings, spec: ModelSpec) -> list[str]:
    """The feature columns the platform serves now: the latest partitions of the spec's assets."""
    lake = Lake(settings.lake_dir)
    columns: list[str] = []
    for source in spec.features:
        days = lake.days(source.asset)
        if not days:
            raise FileNotFoundError(f"{source.asset} has no materialized partition to serve from")
        table = lake.read_days(source.asset, [days[-1]])
        names = [c for c in table.columns if c not in ("instrument", "date")]
        columns.extend(source.columns or names)
    return columns


def train_spec_window(
    settings: Settings,
    spec: ModelSpec,
    key: str,
    run_tags: Mapping[str, str],
    on_metric: "MetricCallback | None" = None,
    tracking_uri: str | None = None,
    audit: AuditLog | None = None,
    artifact_root: Path | str | None = None,
) -> "TrackedWindow":
    """Train the window whose test segment starts at ``key`` and register it as a candidate.

    MLflow and the audit table default to the settings' embedded ones.
    """
    from qlib_assets.models.dataset import window_days
    from qlib_assets.models.tracking import train_and_track

    window, data = window_data(settings, spec, key)
    label_end = shift_sessions(settings.calendar, window.data_end, spec.label.horizon)
    return train_and_track(
        spec,
        window,
        data,
        tracking_uri=tracking_uri or settings.mlflow_uri,
        audit=audit or audit_log(settings),
        run_tags=run_tags,
        on_metric=on_metric,
        landing_files=_landing_lineage(settings, window_days(window, platform_sessions(settings))),
        raw_bars=raw_bars_lineage(Lake(settings.lake_dir), label_end),
        report_dir=settings.root / "reports" / spec.name,
        artifact_root=artifact_root or settings.mlflow_artifacts,
    )
