"""A new champion whose realized IC decays in its first sessions is rolled back."""

import shutil
from datetime import date

import numpy as np
import polars as pl
import pytest

from qlib_assets.lifecycle.champion import alias_timeline, champion
from qlib_assets.lifecycle.decisions import rollback_review
from qlib_assets.lifecycle.gates import gate_version
from qlib_assets.lifecycle.promotion import promote
from qlib_assets.lifecycle.registry_access import registry_of
from qlib_assets.lifecycle.served import serve_predictions
from qlib_assets.models.registry import IllegalTransition
from qlib_assets.online.builders import predictions_asset
from qlib_assets.settings import LifecycleSettings, Settings
from qlib_assets.storage.lake import Lake
from qlib_assets_tests.lifecycle.conftest import Template


def test_a_planted_decay_rolls_the_new_champion_back(home: Settings, template: Template) -> None:
    settings = home.model_copy(
        update={"lifecycle": LifecycleSettings(rollback_sessions=12, rollback_window=6)}
    )
    name, (v1, v2) = template.spec.name, template.versions
    starts = []
    for version in (v1, v2):
        assert gate_version(settings, template.spec, version).passed
        starts.append(
            date.fromisoformat(registry_of(settings).version(name, version).tags["window"])
        )
        promote(settings, template.spec, version, effective_from=starts[-1], actor="t", reason="r")
    days = [d for d in template.market.sessions if d >= starts[0]]
    watched = [d for d in days if d >= starts[1]][:10]
    lake = Lake(settings.lake_dir)
    served = serve_predictions(settings, template.spec, [d for d in days if d <= watched[-1]])
    lake.write_days(predictions_asset(name), served.frame, sorted(served.used))
    assert {served.used[d] for d in watched} == {v2}

    # The realized labels of v2's sessions are planted from its own served scores: first
    # agreeing with them (no rollback), then turned against them (the decay).
    labels_dir = settings.lake_dir / "labels"
    target = labels_dir.resolve()
    labels_dir.unlink()
    shutil.copytree(target, labels_dir)
    scores = served.frame.filter(pl.col("date").is_in(watched))
    noise = pl.Series(np.random.default_rng(0).normal(0, scores["score"].std(), scores.height))

    def plant(sign: float) -> None:
        planted = scores.select(
            "instrument", "date", (sign * pl.col("score") + noise).alias("label")
        )
        lake.write_days("labels", planted, watched)

    plant(1.0)
    assert rollback_review(settings, template.spec, watched[-1]) is None
    plant(-1.0)
    decision = rollback_review(settings, template.spec, watched[-1])
    assert decision is not None and decision.action == "rolled_back" and decision.version == v2
    assert decision.evidence["realized_ic"] < decision.evidence["bound"]
    assert champion(settings, name) == v1
    assert registry_of(settings).state(name, v2) == "rolled_back"
    last = alias_timeline(settings, name)[-1]
    assert last.version == v1 and last.effective_from > watched[-1]
    rows = [e for e in registry_of(settings).history(name, v2) if e.subject == "rollback"]
    assert rows and rows[-1].to_value == f"v{v1}" and "decay" in rows[-1].reason
    # Not promoted again without a new decision.
    with pytest.raises(IllegalTransition, match="rolled_back"):
        promote(settings, template.spec, v2, effective_from=days[-1], actor="t", reason="again")
