"""The request log: every request once, with its outcome; after a SIGKILL nothing answered
before the stated window (2 x flush_seconds) is missing."""

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import polars as pl

from qlib_assets.serving.request_log import LOG_SCHEMA, loss_bound_seconds, read_request_log
from qlib_assets.serving.server import ServiceProcess, ThreadServer, free_port
from qlib_assets_tests.serving.conftest import MARKET, SPEC, Platform, serving_settings


def _today_log(home: Path, env: str = "dev") -> pl.DataFrame:
    return read_request_log(home / "serving" / env / "request_log", [datetime.now(UTC).date()])


def test_every_request_and_response_is_logged_once(platform: Platform, home: Path) -> None:
    day = platform.sessions[-4].isoformat()
    ids = []
    with ThreadServer(serving_settings(home)) as server:
        for count in (1, 3, 7):
            names = list(platform.instruments[:count])
            answer = httpx.post(
                f"{server.url}/v1/predict",
                json={"date": day, "instruments": names},
                headers={"X-Client-Id": f"client-{count}"},
            )
            ids.append(answer.json()["request_id"])
        assert httpx.post(f"{server.url}/v1/predict", json={"date": day}).status_code == 422
        saturday = {"date": "2022-09-24", "instruments": ["SH600000"]}
        assert httpx.post(f"{server.url}/v1/predict", json=saturday).status_code == 400
    log = _today_log(home)
    assert log.schema == pl.Schema(LOG_SCHEMA)
    assert log.height == 5 and log.get_column("request_id").n_unique() == 5
    ok = log.filter(pl.col("status") == 200)
    assert ok.get_column("request_id").to_list() == ids
    assert ok.get_column("client").to_list() == ["client-1", "client-3", "client-7"]
    assert ok.get_column("instruments").to_list() == [1, 3, 7]
    assert ok.get_column("scores").list.len().to_list() == [1, 3, 7]
    assert set(ok.get_column("version")) == {platform.versions[0]}
    assert ok.get_column("inputs_digest").str.len_chars().to_list() == [32] * 3
    assert sorted(log.get_column("status").to_list()) == [200, 200, 200, 400, 422]
    assert (log.get_column("latency_ms") >= 0).all()


def test_a_sigkilled_server_loses_at_most_the_stated_window(
    platform: Platform, home: Path, tmp_path: Path
) -> None:
    flush = 0.3
    environ = {
        "QLIB_ASSETS_HOME": str(home),
        "QLIB_ASSETS_START_DATE": MARKET.start.isoformat(),
        "QLIB_ASSETS_SERVING__SPECS": json.dumps([SPEC]),
        "QLIB_ASSETS_SERVING__FLUSH_SECONDS": str(flush),
    }
    day = platform.sessions[-4].isoformat()
    answered: list[tuple[str, float]] = []
    with ServiceProcess("dev", free_port(), environ, tmp_path / "serve.log") as service:
        service.wait_ready()
        with httpx.Client(timeout=30) as client:
            # At least 3 s and 30 answers (a loaded machine answers slowly), at most 90 s.
            started = time.monotonic()
            while time.monotonic() - started < 90 and (
                len(answered) < 30 or time.monotonic() - started < 3
            ):
                body = {"date": day, "instruments": list(platform.instruments[:3])}
                answer = client.post(f"{service.url}/v1/predict", json=body)
                answered.append((answer.json()["request_id"], time.monotonic()))
        killed_at = time.monotonic()
        service.kill()
    logged = set(_today_log(home).get_column("request_id").to_list())
    bound = loss_bound_seconds(flush)
    must_have = [rid for rid, at in answered if at < killed_at - bound]
    lost = [rid for rid, _ in answered if rid not in logged]
    print(f"answered {len(answered)}, logged {len(logged)}, lost {len(lost)} (bound {bound}s)")
    assert len(must_have) > 10
    assert set(must_have) <= logged
    assert logged <= {rid for rid, _ in answered}
