"""The service on a real uvicorn server on loopback: scores equal the in-process model's, and
every bad input gets its clear 4xx."""


import httpx
import numpy as np
import polars as pl

from qlib_assets.models.specs import load_specs
from qlib_assets.models.tracking import load_scorer
from qlib_assets.online.predictions import scoring_features
from qlib_assets.serving.server import ThreadServer
from qlib_assets.settings import Settings
from qlib_assets.storage.lake import Lake
from qlib_assets_tests.serving.conftest import SPEC, Platform


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
