"""Approvals of moves to production: rows of the audit table (kind ``approval``).

An approval is given for one version in one environment (``settings.env``). Whether one is
needed is the environment's ``lifecycle.require_approval`` setting, by default only in prod; where
none is needed, the promotion records an automatic approval so the history shows who allowed it.
"""

from qlib_assets.lifecycle.registry_access import registry_of
from qlib_assets.models.audit import AuditEntry
from qlib_assets.settings import Settings

KIND = "approval"
APPROVED = "approved"


def approval_required(settings: Settings) -> bool:
    """Whether a move to production in this environment needs a recorded approval."""
    required = settings.lifecycle.require_approval
    return settings.env == "prod" if required is None else required


def record_approval(
    settings: Settings, name: str, version: str, by: str, reason: str
) -> AuditEntry:
    """Record that ``by`` approves ``name`` v``version`` for production in this environment."""
    if not by.strip():
        raise ValueError("an approval needs the name of who approves it (--by)")
    if not reason.strip():
        raise ValueError("an approval needs a reason (--reason)")
    registry = registry_of(settings)
    registry.version(name, version)  # raises when the version does not exist
    return registry.audit.record(
        name, str(version), KIND, settings.env, None, APPROVED, by, reason, {"env": settings.env}
    )


def approval_of(settings: Settings, name: str, version: str) -> AuditEntry | None:
    """The latest approval of ``name`` v``version`` in this environment, if any."""
    rows = [
        e
        for e in registry_of(settings).history(name, str(version))
        if e.kind == KIND and e.subject == settings.env and e.to_value == APPROVED
    ]
    return rows[-1] if rows else None


def has_approval(settings: Settings, name: str, version: str) -> bool:
    return approval_of(settings, name, version) is not None
