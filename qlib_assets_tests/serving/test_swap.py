"""Blue-green: an alias move is followed by the running service with zero failed requests
under load; the old slot stays warm so a switch back is instant."""

import threading
from pathlib import Path

import httpx
import pytest

from qlib_assets.lifecycle.promotion import promote
from qlib_assets.models.specs import load_specs
from qlib_assets.serving.load import LoadResult, run_load
from qlib_assets.serving.server import ThreadServer
from qlib_assets_tests.serving.conftest import ADMIN_TOKEN, SPEC, Platform, serving_settings


def _swap_under_load(platform: Platform, home: Path, rate: float, seconds: float) -> LoadResult:
    settings = serving_settings(home)
    old, new = platform.versions
    day = platform.sessions[-3].isoformat()
    names = list(platform.instruments[:5])
    with ThreadServer(settings) as server:
        spec = load_specs()[SPEC]
        outcomes = []

        def promote_new() -> None:
            outcome = promote(
                settings, spec, new, effective_from=platform.sessions[-2], actor="t", reason="swap"
            )
            outcomes.append(outcome)

        move = threading.Timer(seconds / 4, promote_new)
        move.start()
        try:
            # Past ``seconds``, the load goes on until 20 answers came from the new version.
            result = run_load(
                f"{server.url}/v1/predict",
                lambda i: {"date": day, "instruments": names},
                rate,
                seconds,
                until=lambda done: sum(v == new for _, v in done.versions) >= 20,
                max_seconds=seconds + 60,
            )
        finally:
            move.join()
        print(f"swap under load: {result.summary()}")
        assert outcomes and outcomes[0].promoted, outcomes
        assert result.failed == 0, result.failures[:3]
        assert result.sent >= int(rate * seconds)
        served = [v for _, v in result.versions]
        assert served[0] == old and served[-1] == new, httpx.get(f"{server.url}/v1/models").text
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
    _swap_under_load(platform, home, rate=20, seconds=8)


@pytest.mark.slow
def test_swap_at_200_requests_per_second_for_60_seconds(platform: Platform, home: Path) -> None:
    _swap_under_load(platform, home, rate=200, seconds=60)
