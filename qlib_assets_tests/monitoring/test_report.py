"""The monitoring PNGs are written, are real images and show something (not one flat colour)."""

from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import polars as pl
import pytest

from qlib_assets.monitoring.drift import DriftResult
from qlib_assets.monitoring.report import drift_heatmap, drift_share_chart, rolling_ic_chart
from qlib_assets_tests.monitoring.conftest import DecayCase

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_readable_png(path: Path, min_width: int) -> None:
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    assert path.stat().st_size > 15_000
    pixels = mpimg.imread(path)
    assert pixels.shape[1] >= min_width
    # Many distinct colours: a chart, not a blank canvas.
    colours = np.unique(pixels.reshape(-1, pixels.shape[-1]).round(2), axis=0)
    assert len(colours) > 50


def test_drift_heatmap(around_shift: DriftResult, tmp_path: Path) -> None:
    path = drift_heatmap(around_shift.scores, tmp_path / "heatmap.png", features=15)
    assert path == tmp_path / "heatmap.png"
    assert_readable_png(path, min_width=600)


def test_drift_share_chart(around_shift: DriftResult, tmp_path: Path) -> None:
    assert_readable_png(drift_share_chart(around_shift.summary(), tmp_path / "share.png"), 600)


def test_rolling_ic_chart(decay_case: DecayCase, tmp_path: Path) -> None:
    path = rolling_ic_chart(decay_case.result.rows, tmp_path / "ic.png", title="lgb rolling IC")
    assert_readable_png(path, min_width=800)


def test_empty_tables_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no drift scores"):
        drift_heatmap(pl.DataFrame(), tmp_path / "x.png")
