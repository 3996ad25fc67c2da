"""PredUpdater semantics of online predictions over real trained, registered windows."""

from datetime import date, timedelta

import polars as pl
import pytest

from qlib_assets.evaluation.signal_analysis import analyse_signals
from qlib_assets.models.tracking import load_scorer
from qlib_assets.online.predictions import (
    PREDICTION_SCHEMA,
    PredictionResult,
    Scorer,
    ScorerLoader,
    online_window,
    predict_sessions,
    scoring_features,
)
from qlib_assets_tests.online.conftest import OnlineSetup


def _predict(
    online: OnlineSetup,
    days: list[date],
    latest: date | None = None,
    loader: ScorerLoader | None = None,
) -> PredictionResult:
    features = scoring_features(online.lake, online.spec, days)
    return predict_sessions(
        online.spec,
        online.windows,
        online.model_uris,
        features,
        days,
        latest or online.sessions[-1],
        online.tracking_uri,
        loader=loader,
    )


def _test_days(online: OnlineSetup, windows: slice) -> list[date]:
    chosen = online.windows[windows]
    return [d for d in online.sessions if chosen[0].test[0] <= d <= chosen[-1].test[1]]


def test_each_session_is_scored_by_its_online_window_with_one_load_per_window(
    online: OnlineSetup,
) -> None:
    days = _test_days(online, slice(0, 2))
    loads: list[str] = []

    def counting_loader(uri: str) -> Scorer:
        loads.append(uri)
        return load_scorer(uri, online.tracking_uri)

    result = _predict(online, days, loader=counting_loader)
    assert sorted(loads) == sorted(online.model_uris.values())
    assert result.skipped == {} and result.clipped_to is None and result.warnings == []
    assert result.sessions == days
    assert result.frame.schema == pl.Schema(PREDICTION_SCHEMA)
    assert not result.frame.select("instrument", "date").is_duplicated().any()
    assert result.frame.get_column("score").is_finite().all()

    # A session of the second window equals that window's own model, not the first window's.
    day = online.windows[1].test[0]
    features = scoring_features(online.lake, online.spec, [day]).to_pandas()
    ours = result.frame.filter(pl.col("date") == day).get_column("score").to_numpy()
    for index, expected_equal in ((1, True), (0, False)):
        uri = online.model_uris[online.windows[index].key]
        direct = load_scorer(uri, online.tracking_uri).predict(features)["score"].to_numpy()
        assert bool(abs(direct - ours).max() < 1e-12) is expected_equal


def test_a_sub_range_gives_exactly_the_rows_of_the_same_sessions_of_a_larger_run(
    online: OnlineSetup,
) -> None:
    days = _test_days(online, slice(0, 2))
    larger = _predict(online, days).frame
    sub_days = days[30:50]  # straddles the boundary between the two windows
    assert online_window(online.windows, sub_days[0]) != online_window(online.windows, sub_days[-1])
    sub = _predict(online, sub_days).frame
    assert sub.equals(larger.filter(pl.col("date").is_in(sub_days)))
    assert sub.get_column("date").unique().sort().to_list() == sub_days


def test_a_request_past_the_latest_available_session_is_clipped_with_a_warning(
    online: OnlineSetup,
) -> None:
    days = _test_days(online, slice(0, 1))
    latest = days[9]
    requested = [*days[:10], latest + timedelta(days=1), latest + timedelta(days=30)]
    result = _predict(online, requested, latest=latest)
    assert result.clipped_to == latest
    assert result.sessions == days[:10]
    assert any("clipped" in w and str(latest) in w for w in result.warnings)
    assert result.skipped == {}


def test_sessions_without_an_online_model_are_skipped_with_their_reason(
    online: OnlineSetup,
) -> None:
    first_test = online.windows[0].test[0]
    untrained = online.windows[2]
    before = [d for d in online.sessions if d < first_test][-3:]
    trained = [d for d in online.sessions if first_test <= d][:3]
    not_yet = [d for d in online.sessions if untrained.test[0] <= d][:3]
    result = _predict(online, before + trained + not_yet)

    assert result.sessions == trained
    assert set(result.skipped) == set(before) | set(not_yet)
    for day in before:
        assert "no rolling window" in result.skipped[day]
        assert str(first_test) in result.skipped[day]
    for day in not_yet:
        assert f"window {untrained.key}" in result.skipped[day]
        assert "not been trained" in result.skipped[day]
    assert result.warnings == [
        f"skipped 3 session(s) {before[0]}..{before[-1]}: {result.skipped[before[0]]}",
        f"skipped 3 session(s) {not_yet[0]}..{not_yet[-1]}: {result.skipped[not_yet[0]]}",
    ]
    assert list(result.models) == [online.windows[0].key]


def test_nothing_to_predict_gives_an_empty_frame_with_the_schema(online: OnlineSetup) -> None:
    day = online.windows[2].test[0]
    result = _predict(online, [day])
    assert result.frame.is_empty()
    assert result.frame.schema == pl.Schema(PREDICTION_SCHEMA)
    assert list(result.skipped) == [day]


def test_features_missing_a_model_column_raise_a_clear_error(online: OnlineSetup) -> None:
    days = _test_days(online, slice(0, 1))[:2]
    features = scoring_features(online.lake, online.spec, days).drop("KMID")
    with pytest.raises(ValueError, match=r"missing from the features.*KMID"):
        predict_sessions(
            online.spec,
            online.windows,
            online.model_uris,
            features,
            days,
            days[-1],
            online.tracking_uri,
        )


def test_out_of_sample_predictions_of_the_planted_effects_have_positive_ic(
    online: OnlineSetup,
) -> None:
    days = _test_days(online, slice(0, 2))
    predictions = _predict(online, days).frame
    labels = online.lake.read_days("labels", days)
    analysis = analyse_signals({online.spec.name: predictions}, labels)
    summary = analysis.summary[online.spec.name]
    assert summary["sessions"] == len(days)
    assert summary["ic"] is not None and summary["ic"] > 0.03
    assert summary["rank_ic"] is not None and summary["rank_ic"] > 0.03
