"""Champion resolution, approvals and promotions over a real registry and audit table."""

from datetime import date

import pytest

from qlib_assets.lifecycle.approvals import approval_required, has_approval, record_approval
from qlib_assets.lifecycle.champion import (
    alias_timeline,
    assign_alias,
    champion,
    served_version,
    serving_plan,
)
from qlib_assets.lifecycle.gates import gate_version
from qlib_assets.lifecycle.promotion import promote
from qlib_assets.lifecycle.registry_access import registry_of
from qlib_assets.models.platform import spec_windows
from qlib_assets.models.registry import IllegalTransition
from qlib_assets.settings import Settings
from qlib_assets_tests.lifecycle.conftest import Template


def _window_start(settings: Settings, template: Template, version: str) -> date:
    key = registry_of(settings).version(template.spec.name, version).tags["window"]
    return date.fromisoformat(key)


def test_dev_promotes_with_an_automatic_approval_and_the_timeline_says_who_served(
    home: Settings, template: Template
) -> None:
    name, (v1, v2) = template.spec.name, template.versions
    assert not approval_required(home) and champion(home, name) is None
    for version in (v1, v2):
        assert gate_version(home, template.spec, version).passed
    start1, start2 = _window_start(home, template, v1), _window_start(home, template, v2)
    before = spec_windows(home, template.spec)[0].test[0]
    # Before any promotion a session is served by its window's model, as before the lifecycle.
    assert served_version(home, template.spec, start2).source == "window_model"
    outcome = promote(home, template.spec, v1, effective_from=start1, actor="t", reason="first")
    assert outcome.promoted and champion(home, name) == v1
    assert has_approval(home, name, v1)
    # Sessions after the first promotion keep the champion, even in the next window's test.
    plan = serving_plan(home, template.spec, [before, start1, start2])
    assert plan[start2].version == v1 and plan[start2].source == "promotion"
    promote(home, template.spec, v2, effective_from=start2, actor="t", reason="next window")
    plan = serving_plan(home, template.spec, [start1, start2])
    assert (plan[start1].version, plan[start2].version) == (v1, v2)
    assert plan[start2].current and not plan[start1].current
    assert [a.version for a in alias_timeline(home, name)] == [v1, v2]
    # The previous champion stays in production: it is the fallback.
    assert registry_of(home).state(name, v1) == "production"
    with pytest.raises(IllegalTransition, match="rewrite what served"):
        assign_alias(home, name, "champion", v1, start1, "t", "back in time")


def test_prod_refuses_a_promotion_without_approval_and_keeps_the_champion(
    home: Settings, template: Template
) -> None:
    name, (v1, v2) = template.spec.name, template.versions
    dev_start = _window_start(home, template, v1)
    for version in (v1, v2):
        gate_version(home, template.spec, version)
    promote(home, template.spec, v1, effective_from=dev_start, actor="t", reason="dev")
    prod = home.model_copy(update={"env": "prod"})
    assert approval_required(prod)
    start2 = _window_start(home, template, v2)
    refused = promote(prod, template.spec, v2, effective_from=start2, actor="t", reason="try")
    assert not refused.promoted and refused.champion == v1
    assert "needs a recorded approval" in refused.reason
    assert refused.entry is not None and refused.entry.to_value == "refused"
    assert champion(prod, name) == v1
    assert registry_of(prod).state(name, v2) == "validated"
    # A dev approval does not count in prod.
    assert has_approval(home, name, v2) is False
    record_approval(prod, name, v2, by="alice", reason="reviewed the shadow report")
    done = promote(prod, template.spec, v2, effective_from=start2, actor="t", reason="approved")
    assert done.promoted and champion(prod, name) == v2
    assert done.entry is not None and done.entry.evidence["approval"]["by"] == "alice"
    with pytest.raises(ValueError, match="--by"):
        record_approval(prod, name, v2, by=" ", reason="x")
