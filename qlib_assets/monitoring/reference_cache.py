"""Drift references sampled once per model window and kept as Parquet.

A spec's reference (the features its model window learned from, or its validation-period
predictions) does not change while the window serves, so it is read and sampled once
(:func:`qlib_assets.monitoring.drift.sample_reference`) and stored under
``root/<spec>/<window>/<schema-hash>-n<rows>-s<seed>.parquet``. The feature-schema hash (the same
one the registry tags model versions with) is part of the key, so a changed feature set never
reuses a stale sample; so are the sample size and seed, the whole sampling policy.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from qlib_assets.models.dataset import feature_schema_hash
from qlib_assets.monitoring.drift import (
    KEY_COLUMNS,
    REFERENCE_ROWS,
    REFERENCE_SEED,
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
