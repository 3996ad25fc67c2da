"""Qlib ``DatasetH`` for one rolling window, built from our feature and label tables.

The lake's per-session Parquet files are joined on ``(instrument, date)`` and handed to Qlib as
a ``StaticDataLoader`` over an in-memory frame (index ``(datetime, instrument)``, columns
``(feature|label, name)``), so no Qlib provider or ``qlib.init`` is needed for the dataset.

Processors are refit per window: Qlib's rolling handler keeps the first window's
``fit_start_time``/``fit_end_time`` for every later window (RollingGen never moves them), so its
normalisation statistics go stale. Here each window gets its own ``DataHandlerLP`` over only the
window's sessions, and every processor that takes ``fit_start_time``/``fit_end_time`` receives
that window's train segment.
"""

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd
import polars as pl
from qlib.contrib.data.handler import check_transform_proc
from qlib.data.dataset import DatasetH
from qlib.data.dataset.handler import DataHandlerLP
from qlib.data.dataset.loader import StaticDataLoader

from qlib_assets.models.rolling import Window
from qlib_assets.models.specs import ModelSpec
from qlib_assets.storage.atomic import sha256_file
from qlib_assets.storage.lake import Lake

KEYS = ("instrument", "date")


@dataclass(frozen=True)
class InputFile:
    asset: str
    day: date
    path: str
    sha256: str


@dataclass(frozen=True)
class InputManifest:
    """The exact Parquet files a window read, with their SHA-256 (our data versions)."""

    files: tuple[InputFile, ...]

    def assets(self) -> list[str]:
        return sorted({f.asset for f in self.files})

    def digest(self, asset: str) -> str:
        """One SHA-256 over the asset's ``day:sha256`` lines: equal files give equal digests."""
        lines = sorted(f"{f.day.isoformat()}:{f.sha256}" for f in self.files if f.asset == asset)
        return hashlib.sha256("\n".join(lines).encode()).hexdigest()

    def partitions(self, asset: str) -> dict[str, str]:
        return {f.day.isoformat(): f.sha256 for f in self.files if f.asset == asset}


@dataclass(frozen=True)
class WindowFrame:
    """Features and label of a window's sessions, as one polars frame, plus what it came from."""

    frame: pl.DataFrame
    feature_columns: tuple[str, ...]
    label_column: str
    manifest: InputManifest


def _source_columns(frame: pl.DataFrame, asset: str, wanted: Sequence[str] | None) -> list[str]:
    available = [c for c in frame.columns if c not in KEYS]
    if wanted is None:
        return available
    missing = [c for c in wanted if c not in available]
    if missing:
        raise ValueError(f"feature asset {asset!r} has no columns {missing}")
    return list(wanted)


def window_days(window: Window, calendar: Sequence[date], with_test: bool = False) -> list[date]:
    end = window.test[1] if with_test else window.data_end
    return [d for d in calendar if window.data_start <= d <= end]


def manifest_for(
    lake: Lake,
    assets: Sequence[str],
    days: Sequence[date],
    known: Mapping[str, Mapping[date, str]] | None = None,
) -> InputManifest:
    """SHA-256 of each existing file; ``known`` (e.g. Dagster data versions) skips re-hashing."""
    files = []
    for asset in assets:
        hashes = (known or {}).get(asset, {})
        for day in days:
            path = lake.path(asset, day)
            if path.is_file():
                digest = hashes.get(day) or sha256_file(path)
                files.append(InputFile(asset, day, str(path), digest))
    return InputManifest(tuple(files))


def load_window_frame(
    lake: Lake,
    spec: ModelSpec,
    days: Sequence[date],
    known_hashes: Mapping[str, Mapping[date, str]] | None = None,
) -> WindowFrame:
    """Read the spec's feature and label assets for ``days`` from the lake and join them.

    Rows follow the first feature asset; other assets and the label join left on
    ``(instrument, date)``, so a missing label stays null (Qlib's DropnaLabel drops it for
    learning, inference keeps it). Label files of sessions that are not materialized yet (the
    last two) are skipped.
    """
    joined: pl.DataFrame | None = None
    features: list[str] = []
    owner: dict[str, str] = {}
    for source in spec.features:
        part = lake.read_days(source.asset, days)
        columns = _source_columns(part, source.asset, source.columns)
        for column in columns:
            if column in owner:
                raise ValueError(
                    f"feature column {column!r} is in both {owner[column]!r} and {source.asset!r}"
                )
            owner[column] = source.asset
        features.extend(columns)
        part = part.select(*KEYS, *(pl.col(c).cast(pl.Float32) for c in columns))
        joined = part if joined is None else joined.join(part, on=KEYS, how="left")
    assert joined is not None
    label_days = [d for d in days if lake.exists(spec.label.asset, d)]
    if not label_days:
        raise FileNotFoundError(f"{spec.label.asset}: no label partition among the window's days")
    labels = lake.read_days(spec.label.asset, label_days).select(
        *KEYS, pl.col(spec.label.column).cast(pl.Float32).alias(spec.label.column)
    )
    joined = joined.join(labels, on=KEYS, how="left").sort("date", "instrument")
    assets = [s.asset for s in spec.features] + [spec.label.asset]
    return WindowFrame(
        frame=joined,
        feature_columns=tuple(features),
        label_column=spec.label.column,
        manifest=manifest_for(lake, assets, days, known_hashes),
    )


def frame_from_tables(
    features: Sequence[pl.DataFrame], labels: pl.DataFrame, label_column: str = "label"
) -> WindowFrame:
    """A ``WindowFrame`` from in-memory tables (no lake); its manifest is empty."""
    joined = features[0]
    for part in features[1:]:
        joined = joined.join(part, on=KEYS, how="left")
    columns = tuple(c for c in joined.columns if c not in KEYS)
    joined = (
        joined.select(*KEYS, *(pl.col(c).cast(pl.Float32) for c in columns))
        .join(labels.select(*KEYS, pl.col(label_column).cast(pl.Float32)), on=KEYS, how="left")
        .sort("date", "instrument")
    )
    return WindowFrame(joined, columns, label_column, InputManifest(()))


def _sorted_by_date_instrument(frame: pl.DataFrame) -> bool:
    date, instrument = pl.col("date"), pl.col("instrument")
    ascending = (date > date.shift()) | ((date == date.shift()) & (instrument > instrument.shift()))
    return bool(frame.select(ascending.slice(1).all()).item())


def to_qlib_frame(window_frame: WindowFrame) -> pd.DataFrame:
    """Qlib's layout: index ``(datetime, instrument)`` sorted, columns ``(group, name)``."""
    frame = window_frame.frame
    # Our loaders already sort; checking is a fraction of re-sorting ~160 columns.
    if not _sorted_by_date_instrument(frame):
        frame = frame.sort("date", "instrument")
    values = frame.select(*window_frame.feature_columns, window_frame.label_column).to_numpy()
    index = pd.MultiIndex.from_arrays(
        [
            pd.DatetimeIndex(frame.get_column("date").to_numpy().astype("datetime64[ns]")),
            frame.get_column("instrument").to_numpy(),
        ],
        names=["datetime", "instrument"],
    )
    columns = pd.MultiIndex.from_tuples(
        [("feature", c) for c in window_frame.feature_columns]
        + [("label", window_frame.label_column)]
    )
    return pd.DataFrame(np.asarray(values, dtype=np.float32), index=index, columns=columns)


def build_dataset(spec: ModelSpec, window: Window, data: pd.DataFrame) -> DatasetH:
    """A DatasetH over ``data`` (see ``to_qlib_frame``) with processors fit on the train segment.

    The test segment is included when ``data`` reaches into it.
    """
    fit_start, fit_end = (pd.Timestamp(d) for d in window.train)
    handler = DataHandlerLP(
        instruments=None,
        start_time=None,
        end_time=None,
        data_loader=StaticDataLoader(config=data),
        infer_processors=check_transform_proc(
            [p.qlib_config() for p in spec.processors.infer], fit_start, fit_end
        ),
        learn_processors=check_transform_proc(
            [p.qlib_config() for p in spec.processors.learn], fit_start, fit_end
        ),
    )
    segments = {
        "train": (fit_start, fit_end),
        "valid": tuple(pd.Timestamp(d) for d in window.valid),
    }
    dates = data.index.get_level_values("datetime")
    if len(dates) and dates.max() >= pd.Timestamp(window.test[0]):
        segments["test"] = tuple(pd.Timestamp(d) for d in window.test)
    return DatasetH(handler, segments=segments)


def segment_rows(dataset: DatasetH, segment: str) -> int:
    """Rows of the learn data in ``segment``: ``len(dataset.prepare(segment, data_key=DK_L))``.

    Counted on the datetime level of the handler's learn frame instead of copying the segment.
    """
    start, end = dataset.segments[segment]
    learn = dataset.handler._get_df_by_key(DataHandlerLP.DK_L)
    dates = learn.index.get_level_values("datetime")
    return int(np.count_nonzero((dates >= pd.Timestamp(start)) & (dates <= pd.Timestamp(end))))


def feature_schema_hash(columns: Sequence[str]) -> str:
    """SHA-256 of the ordered feature names: a model reads exactly these columns, in order."""
    return hashlib.sha256("\n".join(columns).encode()).hexdigest()
