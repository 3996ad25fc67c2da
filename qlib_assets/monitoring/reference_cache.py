"""Drift references sampled once per model window and kept as Parquet.

A spec's reference (the features its model window learned from, or its validation-period
predictions) does not change while the window serves, so it is read and sampled once
(:func:`qlib_assets.monitoring.drift.sample_reference`) and stored under
``root/<spec>/<window>/<schema-hash>-n<rows>-s<seed>.parquet``. The feature-schema hash (the same
one the registry tags model versions with) is part of the key, so a changed feature set never
reuses a stale sample; so are the sample size and seed, the whole sampling policy.

Beside it, ``<same>-<method>-thresholds.parquet`` holds the per-column thresholds calibrated on
the window's own sessions (:func:`qlib_assets.monitoring.drift.calibrate_thresholds`), computed
once per window too since they cost tens of full-session scorings.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from qlib_assets.models.dataset import feature_schema_hash
from qlib_assets.monitoring.drift import (
    DEFAULT_METHOD,
    KEY_COLUMNS,
    REFERENCE_ROWS,
    REFERENCE_SEED,
    calibrate_thresholds,
    sample_reference,
)
from qlib_assets.storage.atomic import write_parquet_atomic


@dataclass(frozen=True)
class CachedReference:
    """``built``: True when this call read and sampled the window, False when it came from disk."""

    frame: pl.DataFrame = field(repr=False)
    path: Path
    built: bool


class ReferenceCache:
    def __init__(self, root: Path, rows: int = REFERENCE_ROWS, seed: int = REFERENCE_SEED) -> None:
        self.root = root
        self.rows = rows
        self.seed = seed

    def path(self, spec: str, window: str, columns: Sequence[str]) -> Path:
        digest = feature_schema_hash(list(columns))[:16]
        return self.root / spec / window / f"{digest}-n{self.rows}-s{self.seed}.parquet"

    def get(
        self,
        spec: str,
        window: str,
        columns: Sequence[str],
        build: Callable[[], pl.DataFrame],
    ) -> CachedReference:
        """The sampled reference of (``spec``, ``window``, ``columns``); ``build`` returns the
        whole reference window and is called only when no sample is stored yet."""
        target = self.path(spec, window, columns)
        if target.is_file():
            return CachedReference(pl.read_parquet(target), target, built=False)
        window_frame = build()
        keys = [k for k in KEY_COLUMNS if k in window_frame.columns]
        missing = [c for c in columns if c not in window_frame.columns]
        if missing:
            raise ValueError(f"{spec} {window}: reference lacks columns {missing}")
        sample = sample_reference(window_frame.select(*keys, *columns), self.rows, self.seed)
        write_parquet_atomic(sample, target)
        return CachedReference(sample, target, built=True)

    def thresholds(
        self,
        spec: str,
        window: str,
        columns: Sequence[str],
        build: Callable[[], pl.DataFrame],
        method: str = DEFAULT_METHOD,
    ) -> dict[str, float]:
        """Per-column thresholds of (``spec``, ``window``, ``columns``) calibrated on the whole
        window ``build`` returns (with its ``date`` column), against the same sample
        :meth:`get` keeps; ``build`` is called only when none are stored yet."""
        sample = self.path(spec, window, columns)
        target = sample.with_name(f"{sample.stem}-{method}-thresholds.parquet")
        if target.is_file():
            stored = pl.read_parquet(target)
            return dict(zip(stored["column"], stored["threshold"], strict=True))
        found = calibrate_thresholds(build(), columns, method, sample=self.rows, seed=self.seed)
        frame = pl.DataFrame(
            {"column": list(found), "threshold": list(found.values())},
            schema={"column": pl.String(), "threshold": pl.Float64()},
        )
        write_parquet_atomic(frame, target)
        return found
