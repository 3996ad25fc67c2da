"""Blue-green: an alias move is followed by the running service with zero failed requests
under load; the old slot stays warm so a switch back is instant."""

import threading
from pathlib import Path

import httpx
import pytest

from qlib_assets.models.registry import ModelRegistry
from qlib_assets.models.window_training import audit_log
from qlib_assets.serving.load import LoadResult, run_load
from qlib_assets.serving.server import ThreadServer
from qlib_assets_tests.serving.conftest import ADMIN_TOKEN, SPEC, Platform, serving_settings


def _swap_under_load(platform: Platform, home: Path, rate: float, seconds: float) -> LoadResult:
    settings = serving_settings(home)
    registry = ModelRegistry(settings.mlflow_uri, audit_log(settings))
    old, new = platform.versions
    day = platform.sessions[-3].isoformat()
    names = list(platform.instruments[:5])
    with ThreadServer(settings) as server:
        move = threading.Timer(
            seconds / 3, registry.set_alias, (SPEC, "champion", new, "pytest", "swap under load")
        )
        move.start()
        try:
            result = run_load(
                f"{server.url}/v1/predict",
                lambda i: {"date": day, "instruments": names},
                rate,
                seconds,
            )
        finally:
            move.join()
        print(f"swap under load: {result.summary()}")
        assert result.failed == 0, result.failures[:3]
        assert result.sent == int(rate * seconds)
        served = [v for _, v in result.versions]
        assert served[0] == old and served[-1] == new
        assert set(served) == {old, new}

        (view,) = httpx.get(f"{server.url}/v1/models").json()["specs"]
        slots = {s["version"]: s for s in view["slots"]}
        assert slots[new]["active"] and not slots[old]["active"]  # old stays loaded, warm

        admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        back = httpx.post(f"{server.url}/admin/switch", json={"spec": SPEC}, headers=admin)
        assert back.status_code == 200, back.text
        answer = httpx.post(
            f"{server.url}/v1/predict", json={"date": day, "instruments": names}
        ).json()
        assert answer["version"] == old and answer["slot"] == slots[old]["slot"]
        # A manual switch stands until the alias moves again: the follower leaves it.
        registry_view = httpx.get(f"{server.url}/v1/models").json()["specs"][0]
        assert registry_view["alias_version"] == new
    return result


def test_an_alias_move_swaps_slots_with_zero_failed_requests(
    platform: Platform, home: Path
) -> None:
    _swap_under_load(platform, home, rate=40, seconds=4)


@pytest.mark.slow
def test_swap_at_200_requests_per_second_for_60_seconds(platform: Platform, home: Path) -> None:
    _swap_under_load(platform, home, rate=200, seconds=60)
