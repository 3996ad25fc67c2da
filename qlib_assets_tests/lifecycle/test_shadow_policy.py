"""The shadow policy over the registry: the challenger scores in shadow, then the test decides."""

import shutil
from datetime import date

import numpy as np
import polars as pl

from qlib_assets.asset_keys import shadow_asset
from qlib_assets.lifecycle.champion import assign_alias, champion
from qlib_assets.lifecycle.decisions import shadow_review
from qlib_assets.lifecycle.policies import review_candidate
from qlib_assets.lifecycle.registry_access import registry_of
from qlib_assets.lifecycle.served import serve_predictions, serve_shadow
from qlib_assets.online.builders import predictions_asset
from qlib_assets.settings import LifecycleSettings, Settings
from qlib_assets.storage.lake import Lake
from qlib_assets_tests.lifecycle.conftest import Template


def test_shadow_keeps_the_champion_then_promotes_a_challenger_the_market_favours(
    home: Settings, template: Template
) -> None:
    settings = home.model_copy(
        update={"lifecycle": LifecycleSettings(default_policy="shadow", shadow_sessions=8)}
    )
    name, (v1, v2) = template.spec.name, template.versions
    first = review_candidate(settings, template.spec, v1)
    assert first.action == "promoted" and "no champion" in first.reason
    second = review_candidate(settings, template.spec, v2)
    assert second.action == "challenger" and champion(settings, name) == v1
    start = date.fromisoformat(registry_of(settings).version(name, v2).tags["window"])
    days = [d for d in template.market.sessions if d >= start][:10]
    lake = Lake(settings.lake_dir)
    served = serve_predictions(settings, template.spec, days)
    shadow = serve_shadow(settings, template.spec, days)
    assert set(served.used.values()) == {v1} and set(shadow.used.values()) == {v2}
    lake.write_days(predictions_asset(name), served.frame, days)
    lake.write_days(shadow_asset(name), shadow.frame, days)

    labels_dir = settings.lake_dir / "labels"
    target = labels_dir.resolve()
    labels_dir.unlink()
    shutil.copytree(target, labels_dir)

    def plant(favoured: pl.DataFrame, sessions: list[date], seed: int) -> None:
        """Realized labels that follow one model's scores, plus noise."""
        rng = np.random.default_rng(seed)
        noise = pl.Series(rng.normal(0, 2 * favoured["score"].std(), favoured.height))
        lake.write_days(
            "labels",
            favoured.select("instrument", "date", (pl.col("score") + noise).alias("label")),
            sessions,
        )

    plant(served.frame, days, 1)
    kept = shadow_review(settings, template.spec, days[-1])
    assert kept is not None and kept.action == "kept"
    assert kept.evidence["n"] == len(days) and kept.evidence["statistic"] < 0
    assert champion(settings, name) == v1 and "challenger" not in registry_of(settings).aliases(
        name
    )
    rows = [e for e in registry_of(settings).history(name, v2) if e.subject == "shadow_test"]
    assert rows[-1].to_value == "keep" and rows[-1].evidence["lags"] == 1

    # A new shadow period (a new decision puts v2 back in shadow): the market follows v2.
    later = [d for d in template.market.sessions if d > days[-1]][:10]
    assign_alias(settings, name, "challenger", v2, later[0], "t", "second shadow period")
    served_later = serve_predictions(settings, template.spec, later)
    shadow_later = serve_shadow(settings, template.spec, later)
    lake.write_days(predictions_asset(name), served_later.frame, later)
    lake.write_days(shadow_asset(name), shadow_later.frame, later)
    plant(shadow_later.frame, later, 2)
    promoted = shadow_review(settings, template.spec, later[-1])
    assert promoted is not None and promoted.action == "promoted", promoted
    assert promoted.evidence["sessions"][0] == later[0].isoformat()
    assert champion(settings, name) == v2
    rows = [e for e in registry_of(settings).history(name, v2) if e.subject == "shadow_test"]
    assert rows[-1].to_value == "promote" and rows[-1].evidence["p_value"] < 0.05
