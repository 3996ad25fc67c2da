"""Shipped dev/staging/prod settings, and prod's approval through the command line."""

import json
from datetime import date

import pytest

from qlib_assets.cli import main
from qlib_assets.lifecycle.approvals import approval_required
from qlib_assets.lifecycle.champion import champion
from qlib_assets.lifecycle.gates import gate_version
from qlib_assets.settings import ENVIRONMENTS_DIR, Settings, load_settings
from qlib_assets_tests.lifecycle.conftest import Template


@pytest.mark.parametrize(
    ("env", "policy", "approval"),
    [("dev", "rolling", False), ("staging", "shadow", False), ("prod", "shadow", True)],
)
def test_each_environment_file_is_selected_by_qlib_assets_env(
    env: str, policy: str, approval: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QLIB_ASSETS_ENV", env)
    settings = load_settings()
    assert (ENVIRONMENTS_DIR / f"{env}.yaml").is_file()
    assert settings.env == env and settings.lifecycle.default_policy == policy
    assert approval_required(settings) is approval
    # An explicit variable still wins over the environment's file.
    monkeypatch.setenv("QLIB_ASSETS_LIFECYCLE__DEFAULT_POLICY", "manual")
    assert load_settings().lifecycle.default_policy == "manual"


def test_an_unknown_environment_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QLIB_ASSETS_ENV", "qa")
    with pytest.raises(FileNotFoundError, match="QLIB_ASSETS_ENV=qa"):
        load_settings()


def test_prod_cli_refuses_promotion_until_approved(
    home: Settings,
    template: Template,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    name, version = template.spec.name, template.versions[0]
    assert gate_version(home, template.spec, version).passed
    monkeypatch.setenv("QLIB_ASSETS_ENV", "prod")
    monkeypatch.setenv("QLIB_ASSETS_HOME", str(home.root))
    monkeypatch.setenv("QLIB_ASSETS_SPECS_DIR", str(home.specs_dir))
    monkeypatch.setenv("QLIB_ASSETS_START_DATE", home.start_date.isoformat())
    prod = load_settings()
    promote = ["models", "promote", name, version, "--reason", "go", "--json"]
    assert main(promote) == 1
    refused = json.loads(capsys.readouterr().out)
    assert refused["promoted"] is False and "approval" in refused["reason"]
    assert champion(prod, name) is None
    approve = ["models", "approve", name, version, "--by", "carol", "--reason", "shadow ok"]
    assert main([*approve, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["actor"] == "carol"
    assert main(promote) == 0
    done = json.loads(capsys.readouterr().out)
    assert done["promoted"] is True
    assert date.fromisoformat(done["effective_from"]) >= home.start_date
    assert champion(prod, name) == version
