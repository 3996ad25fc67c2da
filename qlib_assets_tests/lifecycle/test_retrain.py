"""A performance-triggered retrain trains a new window ending at the latest labelled session."""

from qlib_assets.lifecycle.champion import champion
from qlib_assets.lifecycle.registry_access import registry_of
from qlib_assets.lifecycle.retrain import retrain, retrain_window
from qlib_assets.models.platform import platform_sessions, spec_windows
from qlib_assets.settings import Settings
from qlib_assets.storage.lake import Lake
from qlib_assets_tests.lifecycle.conftest import Template


def test_retrain_window_ends_at_the_latest_label_and_respects_trunc_days(
    home: Settings, template: Template
) -> None:
    spec = template.spec
    latest_label = Lake(home.lake_dir).days("labels")[-1]
    window = retrain_window(home, spec)
    calendar = platform_sessions(home)
    assert window.valid[1] == latest_label
    gap = calendar.index(window.test[0]) - calendar.index(window.valid[1])
    assert gap == spec.rolling.trunc_days
    # Not a copy of a scheduled window: none of them ends its valid segment there.
    assert all(w.valid[1] != latest_label for w in spec_windows(home, spec))


def test_retrain_registers_a_new_version_that_goes_through_the_gates(
    home: Settings, template: Template
) -> None:
    done = retrain(home, template.spec, "rolling IC below its bound")
    version = done.tracked.model_version
    assert version not in template.versions
    tags = registry_of(home).version(template.spec.name, version).tags
    assert tags["window"] == done.window.test[0].isoformat()
    assert tags["valid"].endswith(Lake(home.lake_dir).days("labels")[-1].isoformat())
    assert tags["gate.failed"] == "none" and done.decision.action == "promoted"
    assert champion(home, template.spec.name) == version
    run = registry_of(home).client.get_run(done.tracked.run_id)
    assert run.data.tags["retrain_reason"] == "rolling IC below its bound"
