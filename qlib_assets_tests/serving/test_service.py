"""The service on a real uvicorn server on loopback: scores equal the in-process model's, and
every bad input gets its clear 4xx."""

from datetime import date
from pathlib import Path

import httpx
import numpy as np
import polars as pl

from qlib_assets.models.specs import load_specs
from qlib_assets.models.tracking import load_scorer
from qlib_assets.online.predictions import scoring_features
from qlib_assets.serving.server import ThreadServer
from qlib_assets.settings import Settings
from qlib_assets.storage.lake import Lake
from qlib_assets_tests.serving.conftest import SPEC, Platform, serving_settings


def test_scores_equal_the_in_process_model_for_the_same_features(
    platform: Platform, server: ThreadServer
) -> None:
    day = platform.sessions[-5]
    wanted = list(platform.instruments[:25])
    answer = httpx.post(
        f"{server.url}/v1/predict", json={"date": day.isoformat(), "instruments": wanted}
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["spec"] == SPEC and body["version"] == platform.versions[0]
    assert body["slot"] in ("blue", "green") and len(body["request_id"]) == 32
    assert [s["instrument"] for s in body["scores"]] == wanted

    settings = Settings(home=platform.home)
    features = scoring_features(Lake(settings.lake_dir), load_specs()[SPEC], [day])
    features = features.filter(pl.col("instrument").is_in(wanted)).sort("instrument")
    scorer = load_scorer(f"models:/{SPEC}/{platform.versions[0]}", settings.mlflow_uri)
    expected = scorer.predict(features.to_pandas())["score"].to_numpy()
    served = dict((s["instrument"], s["score"]) for s in body["scores"])
    got = np.array([served[i] for i in features.get_column("instrument").to_list()])
    assert np.array_equal(got, expected)

    # The same features sent as rows give the same scores.
    rows = [
        {
            "instrument": r["instrument"],
            "date": r["date"].isoformat(),
            "features": {k: v for k, v in r.items() if k not in ("instrument", "date")},
        }
        for r in features.head(5).to_dicts()
    ]
    by_rows = httpx.post(f"{server.url}/v1/predict", json={"rows": rows}).json()
    assert [s["score"] for s in by_rows["scores"]] == got[:5].tolist()


def _post(server: ThreadServer, body: object) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/predict", json=body, timeout=30)


def test_malformed_bodies_get_422_naming_the_field(
    platform: Platform, server: ThreadServer
) -> None:
    day = platform.sessions[-5].isoformat()
    cases = {
        "instruments": {"date": day},
        "date": {"date": "2022-02-30", "instruments": ["X"]},
        "rows": {"rows": []},
        "extra": {"date": day, "instruments": ["X"], "extra": 1},
        "spec": {"date": day, "instruments": ["X"], "spec": "no_such_spec"},
    }
    for field, body in cases.items():
        answer = _post(server, body)
        assert answer.status_code == 422, (field, answer.text)
        locations = [loc for e in answer.json()["detail"] for loc in e["loc"]]
        messages = " ".join(e["msg"] for e in answer.json()["detail"])
        assert field in locations or field in messages, (field, answer.json())

    row = {"instrument": "SH600000", "date": day, "features": {"KMID": 0.1}}
    answer = _post(server, {"rows": [row]})
    assert answer.status_code == 422
    detail = answer.json()["detail"][0]
    assert detail["loc"] == ["body", "rows[0].features"] and "absent" in detail["msg"]


def test_a_day_that_is_not_a_session_is_400(server: ThreadServer) -> None:
    saturday = date(2022, 9, 24)
    answer = _post(server, {"date": saturday.isoformat(), "instruments": ["SH600000"]})
    assert answer.status_code == 400
    assert "not a XSHG trading session" in answer.json()["detail"]["msg"]
    assert httpx.get(f"{server.url}/v1/signal/{saturday}").status_code == 400


def test_missing_features_are_409_naming_what_is_missing(platform: Platform, home: Path) -> None:
    # This test's lake: the platform's files plus a session before them that lacks columns.
    shared = (platform.home / "lake" / "alpha158").resolve()
    (home / "lake").unlink()
    own = home / "lake" / "alpha158"
    own.mkdir(parents=True)
    for path in shared.glob("*.parquet"):
        (own / path.name).symlink_to(path)
    first = pl.read_parquet(shared / f"{platform.sessions[0]}.parquet")
    thin = first.drop("KMID", "ROC5").with_columns(pl.lit(date(2021, 12, 31)).alias("date"))
    thin.write_parquet(own / "2021-12-31.parquet")

    with ThreadServer(serving_settings(home)) as server:
        not_built = date(2022, 10, 10)  # a session after the lake's last one
        answer = _post(server, {"date": not_built.isoformat(), "instruments": ["SH600000"]})
        assert answer.status_code == 409
        assert answer.json()["detail"]["missing_assets"] == ["alpha158"]

        answer = _post(server, {"date": "2021-12-31", "instruments": ["SH600000"]})
        assert answer.status_code == 409
        assert answer.json()["detail"]["missing_columns"] == ["KMID", "ROC5"]


def test_unknown_instruments_get_a_null_score_with_a_reason(
    platform: Platform, server: ThreadServer
) -> None:
    day = platform.sessions[-5].isoformat()
    known = platform.instruments[0]
    answer = _post(server, {"date": day, "instruments": ["SZ999999", known, "SZ999999"]})
    assert answer.status_code == 200
    scores = answer.json()["scores"]
    assert [s["instrument"] for s in scores] == ["SZ999999", known]
    assert scores[0]["score"] is None and "unknown instrument" in scores[0]["reason"]
    assert isinstance(scores[1]["score"], float) and scores[1]["reason"] is None


def test_signal_health_ready_models_metrics_and_openapi(
    platform: Platform, server: ThreadServer
) -> None:
    day = platform.sessions[-5]
    everyone = list(platform.instruments)
    scores = _post(server, {"date": day.isoformat(), "instruments": everyone}).json()["scores"]
    signal = httpx.get(f"{server.url}/v1/signal/{day}").json()
    assert signal["versions"] == {SPEC: platform.versions[0]}
    values = np.array([s["score"] for s in scores if s["score"] is not None])
    expected = (values - values.mean()) / values.std(ddof=1)
    by_name = {r["instrument"]: r["signal"] for r in signal["signal"]}
    got = np.array([by_name[s["instrument"]] for s in scores if s["score"] is not None])
    assert np.allclose(got, expected, atol=1e-12)

    assert httpx.get(f"{server.url}/health").json()["status"] == "ok"
    ready = httpx.get(f"{server.url}/ready")
    assert ready.status_code == 200 and ready.json()["serving"] == [SPEC]
    (view,) = httpx.get(f"{server.url}/v1/models").json()["specs"]
    (slot,) = view["slots"]
    assert slot["version"] == platform.versions[0] and slot["active"]
    assert slot["verification"]["compatibility"]["compatible"] is True

    _post(server, {"date": "2022-09-24", "instruments": ["SH600000"]})
    metrics = httpx.get(f"{server.url}/metrics").text
    version = platform.versions[0]
    assert (
        f'qlib_serving_requests_total{{endpoint="predict",slot="{slot["slot"]}",'
        f'spec="{SPEC}",status="200",version="{version}"}} 1.0'
    ) in metrics
    assert 'qlib_serving_errors_total{endpoint="predict",kind="client"' in metrics
    assert "qlib_serving_request_latency_seconds_bucket" in metrics

    contract = httpx.get(f"{server.url}/openapi.json").json()
    assert {"/v1/predict", "/v1/signal/{day}", "/health", "/ready", "/metrics"} <= set(
        contract["paths"]
    )
    assert set(contract["paths"]["/v1/predict"]["post"]["responses"]) >= {
        "200",
        "400",
        "409",
        "422",
    }
