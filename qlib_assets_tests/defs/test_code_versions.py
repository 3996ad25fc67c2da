"""Per-asset code versions: distinct per asset, moved by a spec change, seen as stale by Dagster."""

from datetime import date
from pathlib import Path

import dagster as dg
import pytest

from qlib_assets.asset_keys import model_asset, model_spec_name
from qlib_assets.defs.build import build_definitions
from qlib_assets.defs.daily import code_version
from qlib_assets.settings import Settings


def _versions(settings: Settings) -> dict[str, str]:
    graph = build_definitions(settings).resolve_asset_graph()
    return {
        key.to_user_string(): graph.get(key).code_version or ""
        for key in graph.get_all_asset_keys()
        if graph.get(key).is_materializable
    }


def test_every_asset_has_its_own_code_version(settings: Settings) -> None:
    versions = _versions(settings)
    assert versions["raw_bars"] and versions["alpha158"]
    assert len(set(versions.values())) == len(versions)


def test_a_spec_change_moves_only_its_assets(tmp_path: Path) -> None:
    base = Settings(home=tmp_path / "a", start_date=date(2021, 1, 4))
    changed = base.model_copy(update={"custom_factors": {"RANGE2": "($high-$low)/$close"}})
    before, after = _versions(base), _versions(changed)
    moved = {k for k in before if before[k] != after[k]}
    assert moved == {"alpha158"}


def test_code_version_follows_the_source() -> None:
    def one() -> int:
        return 1

    def two() -> int:
        return 2

    assert code_version(one) != code_version(two)
    assert code_version(one, "spec a") != code_version(one, "spec b")
    assert code_version(one) == code_version(one)


def test_a_new_code_version_is_seen_by_dagster() -> None:
    def make(version: str) -> dg.AssetsDefinition:
        @dg.asset(
            name="table",
            code_version=version,
            automation_condition=dg.AutomationCondition.code_version_changed(),
        )
        def table() -> None:
            return None

        return table

    def one() -> int:
        return 1

    def two() -> int:
        return 2

    with dg.instance_for_test() as instance:
        first = dg.evaluate_automation_conditions([make(code_version(one))], instance)
        same = dg.evaluate_automation_conditions(
            [make(code_version(one))], instance, cursor=first.cursor
        )
        moved = dg.evaluate_automation_conditions(
            [make(code_version(two))], instance, cursor=same.cursor
        )
    assert same.total_requested == 0
    assert moved.total_requested == 1


def test_model_asset_names_round_trip() -> None:
    assert model_spec_name(model_asset("lgb_alpha158")) == "lgb_alpha158"
    with pytest.raises(ValueError, match="not a model asset"):
        model_spec_name("predictions_lgb_alpha158")
