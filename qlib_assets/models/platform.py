"""What the settings select for models: the spec files, the sessions the platform's partitions
cover, each spec's rolling windows, and the registry's audit log."""

from datetime import date
from pathlib import Path

from qlib_assets.calendar import last_recorded_session, sessions
from qlib_assets.models.audit import AuditLog, default_audit_url
from qlib_assets.models.rolling import Window, rolling_windows
from qlib_assets.models.specs import SPECS_DIR, ModelSpec, load_specs
from qlib_assets.settings import Settings


def specs_folder(settings: Settings) -> Path:
    return settings.specs_dir or SPECS_DIR


def platform_specs(settings: Settings) -> dict[str, ModelSpec]:
    return load_specs(specs_folder(settings))


def platform_sessions(settings: Settings) -> list[date]:
    """Every session the platform's partitions cover."""
    return list(
        sessions(settings.calendar, settings.start_date, last_recorded_session(settings.calendar))
    )


def spec_windows(settings: Settings, spec: ModelSpec) -> list[Window]:
    """The spec's rolling windows over the platform calendar; a window's key is a partition."""
    days = platform_sessions(settings)
    return rolling_windows(spec.rolling, days, last_day=days[-1])


def audit_url(settings: Settings) -> str:
    return settings.audit_url or default_audit_url(settings.root)


def audit_log(settings: Settings) -> AuditLog:
    return AuditLog(audit_url(settings))
