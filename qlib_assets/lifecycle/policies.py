"""What happens to a new version: gates, then the spec's promotion policy.

``rolling`` (Qlib's behaviour): a validated version takes over at once, from its window's first
test session or the next session to serve, whichever is later. ``shadow``: it becomes the
``challenger`` and scores in shadow until the shadow test decides (``decisions.shadow_review``);
with no champion yet there is nothing to compare with and it is promoted. ``manual``: it becomes
the challenger and waits for ``qlib-assets models promote``.
"""

from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

from qlib_assets.lifecycle.champion import CHALLENGER, assign_alias, champion, next_session_to_serve
from qlib_assets.lifecycle.gates import gate_version
from qlib_assets.lifecycle.promotion import promote
from qlib_assets.lifecycle.registry_access import registry_of
from qlib_assets.models.specs import ModelSpec
from qlib_assets.settings import Settings

Policy = Literal["rolling", "shadow", "manual"]
ACTOR = "lifecycle"


@dataclass(frozen=True)
class Decision:
    """``action``: rejected, promoted, refused, challenger, kept, waiting, rolled_back."""

    spec: str
    version: str
    action: str
    reason: str
    evidence: dict[str, Any] = field(default_factory=dict)


def policy_of(settings: Settings, spec_name: str) -> Policy:
    conf = settings.lifecycle
    return conf.policies.get(spec_name, conf.default_policy)


def takeover_session(settings: Settings, spec: ModelSpec, version: str) -> date:
    """A new window's model serves from its first test session, unless that has been served."""
    tags = registry_of(settings).version(spec.name, version).tags
    return max(date.fromisoformat(tags["window"]), next_session_to_serve(settings, spec, version))


def apply_policy(
    settings: Settings,
    spec: ModelSpec,
    version: str,
    effective_from: date | None = None,
    actor: str = ACTOR,
) -> Decision:
    """Act on a validated ``version`` by the spec's policy."""
    policy = policy_of(settings, spec.name)
    effective = effective_from or takeover_session(settings, spec, version)
    current = champion(settings, spec.name)
    if policy == "rolling" or (policy == "shadow" and current is None):
        why = (
            f"policy {policy}: the new window takes over once validated"
            if policy == "rolling"
            else "policy shadow, but no champion to compare with: promoted"
        )
        outcome = promote(
            settings,
            spec,
            version,
            effective_from=effective,
            actor=actor,
            reason=why,
            evidence={"policy": policy},
        )
        action = "promoted" if outcome.promoted else "refused"
        return Decision(spec.name, version, action, outcome.reason, {"policy": policy})
    why = f"policy {policy}: v{version} scores in shadow beside champion v{current}" + (
        " until the shadow test decides" if policy == "shadow" else " until promoted by hand"
    )
    assign_alias(
        settings, spec.name, CHALLENGER, version, effective, actor, why, {"policy": policy}
    )
    return Decision(spec.name, version, "challenger", why, {"policy": policy})


def review_candidate(
    settings: Settings,
    spec: ModelSpec,
    version: str,
    effective_from: date | None = None,
    actor: str = ACTOR,
) -> Decision:
    """Gates, then the policy: what every new version (window, retrain, tuning) goes through."""
    report = gate_version(settings, spec, version)
    if not report.passed:
        return Decision(spec.name, str(version), "rejected", report.summary(), report.evidence())
    return apply_policy(settings, spec, str(version), effective_from, actor)
