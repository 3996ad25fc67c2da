"""Training each shipped spec on a small generated market through Qlib's own model classes."""

from collections.abc import Mapping

import pandas as pd
import pytest
from qlib.data.dataset.handler import DataHandlerLP

from qlib_assets.models.dataset import build_dataset, load_window_frame, to_qlib_frame, window_days
from qlib_assets.models.report import render_report
from qlib_assets.models.rolling import rolling_windows
from qlib_assets.models.training import WindowTrainingError, train_window
from qlib_assets_tests.models.conftest import ModelLake, small_spec


@pytest.mark.parametrize("name", ["lgbm_alpha158", "xgb_alpha158_indicators", "mlp_alpha158"])
def test_each_shipped_spec_reaches_a_positive_valid_ic(
    model_lake: ModelLake, name: str, tmp_path: pytest.TempPathFactory
) -> None:
    spec = small_spec(name)
    window = rolling_windows(spec.rolling, model_lake.sessions, model_lake.sessions[-3])[0]
    data = load_window_frame(model_lake.lake, spec, window_days(window, model_lake.sessions))
    seen: list[tuple[int, Mapping[str, float]]] = []
    result = train_window(spec, window, data, lambda step, m: seen.append((step, dict(m))))

    assert result.valid_ic.ic > 0.01, result.metrics()
    assert result.valid_ic.rank_ic > 0.0, result.metrics()
    assert int(result.valid_label.notna().sum()) == result.rows["valid"]
    # Per-iteration metrics arrived while training, train and valid both for the GBDTs.
    assert len(seen) >= 10
    names = set().union(*(m for _, m in seen))
    assert any(n.startswith("train") for n in names)
    assert any(n.startswith(("valid", "val_")) for n in names)
    assert result.curves["train"] and result.curves["valid"]
    if name != "mlp_alpha158":
        assert result.feature_importance is not None
        assert set(result.feature_importance.index) == set(result.feature_columns)
    if name == "xgb_alpha158_indicators":
        assert "roc_5" in result.feature_columns and "KMID" in result.feature_columns
    png = render_report(result, tmp_path / "report.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_train_and_valid_labels_end_before_the_test_segment(model_lake: ModelLake) -> None:
    spec = small_spec("lgbm_alpha158")
    days = list(model_lake.sessions)
    for window in rolling_windows(spec.rolling, days, days[-3])[:3]:
        data = load_window_frame(model_lake.lake, spec, window_days(window, days, with_test=True))
        dataset = build_dataset(spec, window, to_qlib_frame(data))
        test_start = days.index(window.test[0])
        for segment in ("train", "valid"):
            frame = dataset.prepare(segment, col_set="label", data_key=DataHandlerLP.DK_L)
            last_label_day = frame.index.get_level_values("datetime").max().date()
            # The label of day d is known at the close of d + 2.
            assert days.index(last_label_day) + 2 < test_start
        assert "test" in dataset.segments


def test_processors_are_refit_on_each_windows_train_segment(model_lake: ModelLake) -> None:
    spec = small_spec("lgbm_alpha158", step=60)
    days = list(model_lake.sessions)
    first, second = rolling_windows(spec.rolling, days, days[-3])[:2]
    stats = []
    for window in (first, second):
        data = load_window_frame(model_lake.lake, spec, window_days(window, days))
        dataset = build_dataset(spec, window, to_qlib_frame(data))
        norm = next(
            p for p in dataset.handler.infer_processors if type(p).__name__ == "RobustZScoreNorm"
        )
        assert (norm.fit_start_time, norm.fit_end_time) == tuple(
            pd.Timestamp(d) for d in window.train
        )
        stats.append(norm.mean_train.copy())
    assert not (stats[0] == stats[1]).all()
    # Qlib writes the fit times into the kwargs it is given: the spec itself stays untouched.
    assert all("fit_start_time" not in p.kwargs for p in spec.processors.infer)


def test_a_failing_window_names_the_spec_the_window_and_qlibs_error(
    model_lake: ModelLake,
) -> None:
    spec = small_spec("lgbm_alpha158")
    bad = spec.model_copy(
        update={"model": spec.model.model_copy(update={"kwargs": {"loss": "huber"}})}
    )
    window = rolling_windows(spec.rolling, model_lake.sessions, model_lake.sessions[-3])[0]
    data = load_window_frame(model_lake.lake, spec, window_days(window, model_lake.sessions))
    with pytest.raises(WindowTrainingError, match=rf"lgbm_alpha158@v1 window {window.key} .*"):
        train_window(bad, window, data)
    with pytest.raises(WindowTrainingError, match="NotImplementedError"):
        train_window(bad, window, data)
