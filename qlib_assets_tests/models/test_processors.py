"""Our fast processors give exactly the output of Qlib's, alone and inside a DataHandlerLP."""

import warnings

import numpy as np
import pandas as pd
import polars as pl
import pytest
from qlib.data.dataset import processor as qlib_processor

from qlib_assets.models import processors
from qlib_assets.models.dataset import (
    InputManifest,
    WindowFrame,
    build_dataset,
    frame_from_tables,
    segment_rows,
    to_qlib_frame,
)
from qlib_assets.models.rolling import Window
from qlib_assets.models.specs import PROCESSOR_MODULE, load_specs

FEATURES = 12


def _frame(sessions: int, instruments: int = 30, seed: int = 3) -> pd.DataFrame:
    """Qlib-layout float32 frame with NaNs, ties, an all-NaN and a constant feature."""
    rng = np.random.default_rng(seed)
    days = pd.bdate_range("2022-01-03", periods=sessions).date
    keys = pl.DataFrame(
        {
            "instrument": np.repeat([f"SH{i:06d}" for i in range(instruments)], sessions),
            "date": pl.Series(list(days) * instruments, dtype=pl.Date),
        }
    )
    values = rng.standard_t(3, size=(keys.height, FEATURES)) * rng.uniform(0.01, 50, FEATURES)
    values[rng.random(values.shape) < 0.15] = np.nan
    values[:, 1] = np.round(values[:, 1])  # ties around the median
    values[:, 2] = np.nan
    values[:, 3] = 7.0
    features = keys.with_columns(
        pl.Series(f"f{j}", values[:, j], nan_to_null=False) for j in range(FEATURES)
    )
    label = rng.normal(size=keys.height)
    label[rng.random(keys.height) < 0.1] = np.nan
    labels = keys.with_columns(pl.Series("label", label, nan_to_null=True))
    return to_qlib_frame(frame_from_tables([features], labels))


def _fit_period(frame: pd.DataFrame) -> tuple[pd.Timestamp, pd.Timestamp]:
    dates = frame.index.get_level_values("datetime").unique()
    return dates[2], dates[len(dates) * 2 // 3]


def _run(proc: qlib_processor.Processor, frame: pd.DataFrame) -> pd.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        proc.fit(frame)
        return proc(frame)


# 40 sessions x 30 instruments puts over 600 rows in the fit period (np.nanmedian's per-column
# path), 10 sessions fewer (its masked-array path).
@pytest.mark.parametrize("sessions", [40, 10])
@pytest.mark.parametrize("clip", [True, False])
def test_robust_zscore_matches_qlib(sessions: int, clip: bool) -> None:
    frame = _frame(sessions)
    start, end = _fit_period(frame)
    ours = processors.RobustZScoreNorm(start, end, fields_group="feature", clip_outlier=clip)
    theirs = qlib_processor.RobustZScoreNorm(start, end, fields_group="feature", clip_outlier=clip)
    expected = _run(theirs, frame.copy())
    result = _run(ours, frame.copy())
    np.testing.assert_array_equal(ours.mean_train, theirs.mean_train)
    np.testing.assert_array_equal(ours.std_train, theirs.std_train)
    pd.testing.assert_frame_equal(result, expected, check_exact=True)
    assert np.isnan(result[("feature", "f2")]).all()
    largest = float(result["feature"].abs().max().max())
    assert largest == 3.0 if clip else largest > 3.0


def test_robust_zscore_mixed_dtypes_match_qlib() -> None:
    frame = _frame(40)
    frame[("feature", "f0")] = frame[("feature", "f0")].astype(np.float64)
    start, end = _fit_period(frame)
    ours = processors.RobustZScoreNorm(start, end, fields_group="feature")
    theirs = qlib_processor.RobustZScoreNorm(start, end, fields_group="feature")
    pd.testing.assert_frame_equal(
        _run(ours, frame.copy()), _run(theirs, frame.copy()), check_exact=True
    )


@pytest.mark.parametrize(("group", "fill"), [("feature", 0), (None, 0), ("feature", 0.1)])
def test_fillna_matches_qlib(group: str | None, fill: float) -> None:
    frame = _frame(20)
    expected = _run(qlib_processor.Fillna(fields_group=group, fill_value=fill), frame.copy())
    result = _run(processors.Fillna(fields_group=group, fill_value=fill), frame.copy())
    pd.testing.assert_frame_equal(result, expected, check_exact=True)
    assert not result["feature"].isna().any().any()


def test_csrank_matches_qlib_and_leaves_its_input() -> None:
    frame = qlib_processor.DropnaLabel()(_frame(20))
    before = frame.copy()
    expected = _run(qlib_processor.CSRankNorm(fields_group="label"), frame.copy())
    result = _run(processors.CSRankNorm(fields_group="label"), frame)
    pd.testing.assert_frame_equal(result, expected, check_exact=True)
    pd.testing.assert_frame_equal(frame, before, check_exact=True)
    assert processors.CSRankNorm(fields_group="label").readonly()


def test_handler_with_fast_processors_matches_qlib() -> None:
    frame = _frame(60)
    days = frame.index.get_level_values("datetime").unique().date
    window = Window(
        train=(days[0], days[35]), valid=(days[39], days[50]), test=(days[54], days[59])
    )
    spec = load_specs()["lgbm_alpha158"]
    used = {p.module_path for p in spec.processors.infer + spec.processors.learn}
    assert used == {PROCESSOR_MODULE, processors.__name__}
    qlib_only = spec.processors.model_copy(
        update={
            part: tuple(p.model_copy(update={"module_path": PROCESSOR_MODULE}) for p in procs)
            for part, procs in (
                ("infer", spec.processors.infer),
                ("learn", spec.processors.learn),
            )
        }
    )
    reference = spec.model_copy(update={"processors": qlib_only})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = build_dataset(spec, window, frame.copy())
        theirs = build_dataset(reference, window, frame.copy())
    for key in ("infer", "learn"):
        pd.testing.assert_frame_equal(
            ours.handler._get_df_by_key(key),
            theirs.handler._get_df_by_key(key),
            check_exact=True,
        )
    pd.testing.assert_frame_equal(ours.handler._data, frame, check_exact=True)
    for segment in ("train", "valid", "test"):
        count = segment_rows(ours, segment)
        assert count == len(ours.prepare(segment, col_set="label", data_key="learn")) > 0


def test_qlib_frame_sorted_whatever_the_input_order() -> None:
    frame = _frame(5, instruments=4)
    table = pl.DataFrame(
        {
            "instrument": frame.index.get_level_values("instrument").to_numpy(),
            "date": pl.Series(list(frame.index.get_level_values("datetime").date), dtype=pl.Date),
            "f": np.arange(len(frame), dtype=np.float32),
            "label": np.ones(len(frame), dtype=np.float32),
        }
    )
    shuffled = WindowFrame(
        table.sample(fraction=1.0, shuffle=True, seed=0), ("f",), "label", InputManifest(())
    )
    result = to_qlib_frame(shuffled)
    assert result.index.equals(frame.index)
    np.testing.assert_array_equal(result[("feature", "f")], np.arange(len(frame)))
