"""Lifecycle states, aliases, audit history, lineage, compatibility and search."""

import pytest

from qlib_assets.models.registry import STATE_TAG, IllegalTransition, ModelRegistry
from qlib_assets_tests.models.conftest import Tracked

NAME = "lgbm_alpha158"


@pytest.fixture(scope="module")
def registry(tracked: Tracked) -> ModelRegistry:
    return ModelRegistry(tracked.tracking_uri, tracked.audit)


def test_lifecycle_to_production_with_aliases_and_full_history(
    tracked: Tracked, registry: ModelRegistry
) -> None:
    first, second = (w.model_version for w in tracked.windows)
    columns = list(tracked.windows[0].result.feature_columns)
    registry.transition(NAME, first, "validated", "alice", "valid IC above floor", {"ic": 0.03})
    registry.transition(NAME, first, "staging", "alice", "shadow run")
    registry.transition(NAME, first, "production", "bob", "approved", serving_features=columns)
    registry.set_alias(NAME, "champion", first, "bob", "promoted")
    registry.set_alias(NAME, "challenger", second, "bob", "next window")
    registry.set_alias(NAME, "champion", second, "bob", "challenger won", {"p_value": 0.01})

    assert registry.state(NAME, first) == "production"
    assert registry.aliases(NAME) == {"champion": second, "challenger": second}
    moves = [
        (e.kind, e.subject, e.from_value, e.to_value, e.actor)
        for e in registry.history(NAME, first)
    ]
    assert moves == [
        ("state", "lifecycle", None, "candidate", "pytest"),
        ("state", "lifecycle", "candidate", "validated", "alice"),
        ("state", "lifecycle", "validated", "staging", "alice"),
        ("state", "lifecycle", "staging", "production", "bob"),
        ("alias", "champion", None, first, "bob"),
    ]
    champion_moves = [e for e in registry.history(NAME) if e.subject == "champion"]
    assert [(e.from_value, e.to_value) for e in champion_moves] == [(None, first), (first, second)]
    assert champion_moves[-1].evidence == {"p_value": 0.01}
    production = registry.history(NAME, first)[3]
    assert production.evidence["compatibility"]["compatible"] is True


def test_illegal_transitions_are_refused_without_an_audit_row(
    tracked: Tracked, registry: ModelRegistry
) -> None:
    second = tracked.windows[1].model_version
    before = tracked.audit.count()
    with pytest.raises(IllegalTransition, match=r"candidate -> production is not allowed"):
        registry.transition(
            NAME, second, "production", "eve", "skip the gates", serving_features=[]
        )
    with pytest.raises(IllegalTransition, match="unknown state"):
        registry.transition(NAME, second, "deployed", "eve", "typo")
    with pytest.raises(IllegalTransition, match="unknown alias"):
        registry.set_alias(NAME, "leader", second, "eve", "typo")
    assert tracked.audit.count() == before
    assert registry.version(NAME, second).tags[STATE_TAG] == "candidate"


def test_production_requires_a_compatible_serving_feature_set(
    tracked: Tracked, registry: ModelRegistry
) -> None:
    version = tracked.windows[1].model_version
    columns = list(tracked.windows[1].result.feature_columns)
    report = registry.check_compatibility(NAME, version, columns[::-1])
    assert not report.ok
    assert "feature schema" in report.problems[0]
    assert registry.check_compatibility(NAME, version, columns).ok
    registry.transition(NAME, version, "validated", "ci", "gates passed")
    registry.transition(NAME, version, "staging", "ci", "shadow")
    before = tracked.audit.count()
    with pytest.raises(IllegalTransition, match="not compatible with serving"):
        registry.transition(NAME, version, "production", "ci", "go", serving_features=columns[:-1])
    assert tracked.audit.count() == before
    assert registry.state(NAME, version) == "staging"


def test_lineage_and_search(tracked: Tracked, registry: ModelRegistry) -> None:
    first = tracked.windows[0]
    lineage = registry.lineage(NAME, first.model_version)
    assert lineage.run_id == first.run_id
    assert lineage.run_status == "FINISHED"
    assert lineage.partitions["labels"] == tracked.data[0].manifest.partitions("labels")
    assert lineage.landing_files == {"landing/bars_2023.parquet": "ab" * 32}
    assert {i["name"] for i in lineage.inputs} == {"alpha158", "labels"}

    window = first.result.window.key
    found = registry.search(spec=NAME, window=window)
    assert [str(m.version) for m in found] == [first.model_version]
    ics = [w.result.valid_ic.ic for w in tracked.windows]
    assert abs(ics[0] - ics[1]) > 1e-6
    above = registry.search(spec=NAME, metric="valid_ic", min_value=sum(ics) / 2)
    assert [str(m.version) for m in above] == [tracked.windows[ics.index(max(ics))].model_version]
    assert len(registry.search(tags={"code_version": "test"})) == 2
    assert registry.search(spec=NAME, tags={"code_version": "other"}) == []
