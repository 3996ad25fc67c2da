"""Moves to production: a version becomes the champion from a given session on.

``promote`` checks the approval the environment needs, walks the version to production
(validated -> staging -> production, each an audit row, the last one checked for compatibility
with the served features), moves the ``champion`` alias with its ``effective_from`` session and
keeps at most ``lifecycle.keep_production`` production versions (the champion and its
fallbacks). A missing approval leaves the champion in place: the refusal is an audit row
(kind ``decision``) and the returned outcome says why.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from qlib_assets.lifecycle.approvals import approval_of, approval_required, record_approval
from qlib_assets.lifecycle.champion import (
    CHALLENGER,
    CHAMPION,
    alias_timeline,
    assign_alias,
    champion,
    fallback_versions,
)
from qlib_assets.lifecycle.registry_access import registry_of
from qlib_assets.models.audit import AuditEntry
from qlib_assets.models.registry import IllegalTransition
from qlib_assets.models.specs import ModelSpec
from qlib_assets.models.window_training import serving_features
from qlib_assets.settings import Settings

DECISION = "decision"


@dataclass(frozen=True)
class PromotionOutcome:
    promoted: bool
    spec: str
    version: str
    champion: str | None  # the champion after the call
    reason: str
    entry: AuditEntry | None = None


def record_decision(
    settings: Settings,
    name: str,
    version: str,
    subject: str,
    outcome: str,
    actor: str,
    reason: str,
    evidence: Mapping[str, Any] | None = None,
) -> AuditEntry:
    """An audit row of a lifecycle decision (promotion, shadow test, rollback, fallback)."""
    return registry_of(settings).audit.record(
        name,
        str(version),
        DECISION,
        subject,
        champion(settings, name),
        outcome,
        actor,
        reason,
        evidence,
    )


def promote(
    settings: Settings,
    spec: ModelSpec,
    version: str,
    *,
    effective_from: date,
    actor: str,
    reason: str,
    evidence: Mapping[str, Any] | None = None,
) -> PromotionOutcome:
    """Make ``version`` the champion of ``spec`` from session ``effective_from`` on."""
    version = str(version)
    registry = registry_of(settings)
    before = champion(settings, spec.name)
    details = dict(evidence or {})
    if approval_required(settings):
        approval = approval_of(settings, spec.name, version)
        if approval is None:
            why = (
                f"{spec.name} v{version}: {settings.env} needs a recorded approval before a move "
                f"to production (qlib-assets models approve {spec.name} {version} --by WHO "
                f"--reason ...); the champion stays {f'v{before}' if before else 'unset'}"
            )
            entry = record_decision(
                settings, spec.name, version, "promotion", "refused", actor, why, details
            )
            return PromotionOutcome(False, spec.name, version, before, why, entry)
        details["approval"] = {"by": approval.actor, "reason": approval.reason, "id": approval.id}
    else:
        approval = record_approval(
            settings, spec.name, version, f"auto:{settings.env}", f"automatic in {settings.env}"
        )
        details["approval"] = {"by": approval.actor, "id": approval.id}

    state = registry.state(spec.name, version)
    if state in ("validated", "archived"):
        registry.transition(
            spec.name, version, "staging", actor, f"on the way to production: {reason}", details
        )
        state = "staging"
    if state == "staging":
        registry.transition(
            spec.name,
            version,
            "production",
            actor,
            reason,
            details,
            serving_features=serving_features(settings, spec),
        )
    elif state != "production":
        raise IllegalTransition(
            f"{spec.name} v{version} is {state}: only a validated, staging or production version "
            "can become the champion"
        )
    entry = assign_alias(
        settings,
        spec.name,
        CHAMPION,
        version,
        effective_from,
        actor,
        reason,
        {**details, "previous": before},
    )
    if registry.aliases(spec.name).get(CHALLENGER) == version:
        assign_alias(
            settings,
            spec.name,
            CHALLENGER,
            None,
            effective_from,
            actor,
            f"v{version} promoted to champion",
            {},
        )
    _trim_production(settings, spec.name, actor)
    return PromotionOutcome(True, spec.name, version, version, reason, entry)


def _trim_production(settings: Settings, name: str, actor: str) -> None:
    keep = settings.lifecycle.keep_production
    current = champion(settings, name)
    others = fallback_versions(settings, name, current)
    registry = registry_of(settings)
    for version in others[keep - 1 :]:
        registry.transition(
            name,
            version,
            "archived",
            actor,
            f"more than {keep} production versions: the oldest champions are archived",
        )


def last_promotion_session(settings: Settings, name: str) -> date | None:
    """The first session the latest alias move applies to; a new move may not start earlier."""
    timeline = alias_timeline(settings, name)
    return timeline[-1].effective_from if timeline else None
