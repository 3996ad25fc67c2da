"""What the settings select for models: the spec files, the sessions the platform's partitions
cover, each spec's rolling windows, and the registry's audit log."""

from bisect import bisect_right
from datetime import date
from functools import lru_cache
from pathlib import Path

from qlib_assets.calendar import current_session, last_recorded_session, sessions
from qlib_assets.models.audit import AuditLog, default_audit_url
from qlib_assets.models.rolling import Window, rolling_windows
from qlib_assets.models.specs import SPECS_DIR, ModelSpec, load_specs
from qlib_assets.settings import Settings


def specs_folder(settings: Settings) -> Path:
    return settings.specs_dir or SPECS_DIR


def platform_specs(settings: Settings) -> dict[str, ModelSpec]:
    folder = specs_folder(settings)
    stamp = tuple((p.name, p.stat().st_mtime_ns) for p in sorted(folder.glob("*.yaml")))
    return dict(_specs_as_of(folder, stamp))


@lru_cache(maxsize=8)
def _specs_as_of(folder: Path, stamp: tuple[tuple[str, int], ...]) -> dict[str, ModelSpec]:
    # Every part of the graph reads the specs when definitions are built; a file's change of
    # modification time reads the folder again.
    return load_specs(folder)


def platform_sessions(settings: Settings) -> list[date]:
    """Every session the platform's partitions cover."""
    return list(
        sessions(settings.calendar, settings.start_date, last_recorded_session(settings.calendar))
    )


def spec_windows(settings: Settings, spec: ModelSpec) -> list[Window]:
    """The spec's rolling windows over the platform calendar whose labels can exist by the
    current session (its valid segment ends ``horizon`` sessions before it); a window's key is
    a partition."""
    days = platform_sessions(settings)
    today = current_session(settings.calendar)
    last_labelled = days[max(0, bisect_right(days, today) - 1 - spec.label.horizon)]
    windows = rolling_windows(spec.rolling, days, last_day=days[-1])
    return [w for w in windows if w.data_end <= last_labelled]


def audit_url(settings: Settings) -> str:
    return settings.audit_url or default_audit_url(settings.root)


def audit_log(settings: Settings) -> AuditLog:
    return AuditLog(audit_url(settings))
