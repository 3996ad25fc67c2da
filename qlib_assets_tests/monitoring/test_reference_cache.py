"""The sampled reference is built once per (spec, window, feature schema) and read back after."""

from pathlib import Path

import polars as pl

from qlib_assets.monitoring.drift import calibrate_thresholds, feature_drift
from qlib_assets.monitoring.reference_cache import ReferenceCache
from qlib_assets_tests.monitoring.conftest import SHIFT, ShiftedFeatures

NAMES = ["KLEN", "VMA60", "ROC5"]


def test_second_call_reads_the_cache(shifted_features: ShiftedFeatures, tmp_path: Path) -> None:
    builds: list[int] = []

    def build() -> pl.DataFrame:
        builds.append(1)
        return shifted_features.reference

    cache = ReferenceCache(tmp_path, rows=2_000, seed=0)
    first = cache.get("lgb", "2024-01", NAMES, build)
    written = first.path.stat().st_mtime_ns
    second = cache.get("lgb", "2024-01", NAMES, build)

    assert (first.built, second.built, len(builds)) == (True, False, 1)
    assert second.path == first.path and second.path.stat().st_mtime_ns == written
    assert second.frame.equals(first.frame)
    assert first.frame.columns == ["instrument", "date", *NAMES]
    assert first.frame.height == 2_000

    # Scores from the cached sample equal scores from sampling the window in the session.
    current = shifted_features.alpha158.filter(pl.col("date") == SHIFT)
    cached = feature_drift(second.frame, current, NAMES, sample=None).scores
    direct = feature_drift(shifted_features.reference, current, NAMES, sample=2_000).scores
    assert cached.equals(direct)


def test_key_separates_specs_windows_and_schemas(
    shifted_features: ShiftedFeatures, tmp_path: Path
) -> None:
    cache = ReferenceCache(tmp_path, rows=1_000)
    paths = {
        cache.get(spec, window, names, lambda: shifted_features.reference).path
        for spec, window, names in [
            ("lgb", "2024-01", NAMES),
            ("lgb", "2024-02", NAMES),
            ("mlp", "2024-01", NAMES),
            ("lgb", "2024-01", NAMES[:2]),
            ("lgb", "2024-01", list(reversed(NAMES))),
        ]
    }
    assert len(paths) == 5
    assert ReferenceCache(tmp_path, rows=500).path("lgb", "2024-01", NAMES) not in paths


def test_thresholds_are_calibrated_once_per_window(
    shifted_features: ShiftedFeatures, tmp_path: Path
) -> None:
    builds: list[int] = []

    def build() -> pl.DataFrame:
        builds.append(1)
        return shifted_features.reference

    cache = ReferenceCache(tmp_path, rows=2_000, seed=0)
    first = cache.thresholds("lgb", "2024-01", NAMES, build)
    second = cache.thresholds("lgb", "2024-01", NAMES, build)
    assert (first, len(builds)) == (second, 1)
    assert first == calibrate_thresholds(shifted_features.reference, NAMES, sample=2_000)
