"""The lifecycle through Dagster: served predictions name their version, a fallback fails the
ERROR check, the review asset runs, and the approval job records an approval."""

from datetime import date

import dagster as dg
import polars as pl

from qlib_assets.defs.build import build_definitions
from qlib_assets.defs.online import SERVED_CHECK
from qlib_assets.lifecycle.approvals import has_approval
from qlib_assets.lifecycle.gates import gate_version
from qlib_assets.lifecycle.promotion import promote
from qlib_assets.lifecycle.registry_access import registry_of
from qlib_assets.online.builders import predictions_asset
from qlib_assets.orchestration import materialize_range
from qlib_assets.settings import Settings
from qlib_assets.storage.lake import Lake
from qlib_assets_tests.lifecycle.conftest import Template


def _check(result: dg.ExecuteInProcessResult) -> dg.AssetCheckEvaluation:
    evaluations = result.get_asset_check_evaluations()
    return next(e for e in evaluations if e.check_name == SERVED_CHECK)


def test_predictions_asset_serves_the_champion_and_a_fallback_fails_its_check(
    home: Settings, template: Template
) -> None:
    name, (v1, v2) = template.spec.name, template.versions
    for version in (v1, v2):
        assert gate_version(home, template.spec, version).passed
        start = date.fromisoformat(registry_of(home).version(name, version).tags["window"])
        promote(home, template.spec, version, effective_from=start, actor="t", reason="r")
    days = [d for d in template.market.sessions if d >= start][:5]
    defs = build_definitions(home)
    instance = dg.DagsterInstance.ephemeral()
    asset = predictions_asset(name)
    first = materialize_range(
        defs, instance, [asset], days[0].isoformat(), days[1].isoformat(), log_level="ERROR"
    )
    meta = first.asset_materializations_for_node(asset)[0].metadata
    assert meta["model_version"].value == v2
    assert _check(first).passed
    rows = Lake(home.lake_dir).read_days(asset, days[:2])
    assert rows.get_column("model_version").unique().to_list() == [v2]

    registry_of(home).transition(name, v2, "archived", "ops", "withdrawn")
    second = materialize_range(
        defs, instance, [asset], days[2].isoformat(), days[4].isoformat(), log_level="ERROR"
    )
    check = _check(second)
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert second.asset_materializations_for_node(asset)[0].metadata["model_version"].value == v1
    served = Lake(home.lake_dir).read_days(asset, days[2:])
    assert served.select(pl.col("date").n_unique()).item() == 3

    review = materialize_range(
        defs,
        instance,
        ["lifecycle_review"],
        days[0].isoformat(),
        days[0].isoformat(),
        log_level="ERROR",
    )
    assert review.success

    approve = defs.resolve_job_def("approve_model_version").execute_in_process(
        instance=instance,
        run_config={
            "ops": {
                "approve": {"config": {"model": name, "version": v1, "by": "bob", "reason": "ok"}}
            }
        },
    )
    assert approve.success and has_approval(home, name, v1)
