"""Staging and prod as separate `qlib-assets serve` processes on loopback, and the deployment
pipeline between them: prod refuses without approval, deploys with it, and a failed
performance test rolls staging back by itself."""

import json
import time
from pathlib import Path

import httpx
import pytest

from qlib_assets.lifecycle.approvals import record_approval
from qlib_assets.lifecycle.registry_access import registry_of
from qlib_assets.models.specs import load_specs
from qlib_assets.serving.deployment import active_version, deploy_version, service_url
from qlib_assets.serving.server import ServiceProcess, free_port
from qlib_assets_tests.serving.conftest import MARKET, SPEC, Platform, serving_settings


def _wait_live(url: str, seconds: float = 300) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(url)


@pytest.mark.slow
def test_staging_to_prod_with_approval_and_rollback(
    platform: Platform, home: Path, tmp_path: Path
) -> None:
    ports = {"dev": free_port(), "staging": free_port(), "prod": free_port()}
    settings = serving_settings(home, ports=ports, perf_rate=4, perf_seconds=3, p99_ms=60_000)
    environ = {
        "QLIB_ASSETS_HOME": str(home),
        "QLIB_ASSETS_START_DATE": MARKET.start.isoformat(),
        "QLIB_ASSETS_SERVING__SPECS": json.dumps([SPEC]),
        "QLIB_ASSETS_SERVING__POLL_SECONDS": "0.3",
        "QLIB_ASSETS_LIFECYCLE__IC_FLOOR": "-1",
    }
    spec = load_specs()[SPEC]
    old, new = platform.versions
    registry = registry_of(settings)
    with (
        ServiceProcess("staging", ports["staging"], environ, tmp_path / "staging.log"),
        ServiceProcess("prod", ports["prod"], environ, tmp_path / "prod.log") as prod,
    ):
        prod.wait_ready(300)
        staging_url, prod_url = service_url(settings, "staging"), service_url(settings, "prod")
        _wait_live(staging_url)
        assert httpx.get(f"{staging_url}/health").json()["env"] == "staging"
        assert active_version(prod_url, SPEC) == old

        refused = deploy_version(settings, spec, new, timeout=240)
        assert refused.outcome == "refused", refused
        assert "approval" in refused.reason
        assert active_version(staging_url, SPEC) == new  # staging serves it
        assert active_version(prod_url, SPEC) == old  # prod untouched
        tags = registry.version(SPEC, new).tags
        assert tags["deploy.staging.performance"] == "pass"
        assert float(tags["deploy.staging.performance.p99_ms"]) > 0

        record_approval(settings.model_copy(update={"env": "prod"}), SPEC, new, "alice", "ok")
        deployed = deploy_version(settings, spec, new, timeout=240)
        assert deployed.outcome == "deployed", deployed
        assert active_version(prod_url, SPEC) == new
        decisions = [e for e in registry.history(SPEC, new) if e.kind == "decision"]
        assert [e.subject for e in decisions][-2:] == ["deployment.staging", "deployment.prod"]

        strict = settings.model_copy(
            update={"serving": settings.serving.model_copy(update={"p99_ms": 0.001})}
        )
        failed = deploy_version(strict, spec, old, timeout=240)
        assert failed.outcome == "rolled_back" and "performance" in failed.reason
        assert "challenger" not in registry.aliases(SPEC)  # staging restored by itself
        assert active_version(prod_url, SPEC) == new
