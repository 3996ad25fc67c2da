"""A spec's fixed scoring sample, and a registered version loaded on the CPU scoring it.

The sample is built once per (spec, serving feature schema) from the latest sessions that have
every feature asset, and kept as a Parquet file: every later gate and every health check of the
same schema scores exactly the same rows, so two scorings of one version can be compared byte
for byte, and two versions on the same rows.
"""

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from qlib_assets.models.dataset import feature_schema_hash
from qlib_assets.models.specs import ModelSpec
from qlib_assets.models.window_training import serving_features
from qlib_assets.online.predictions import Scorer, score_rows, scoring_features
from qlib_assets.settings import Settings
from qlib_assets.storage.atomic import sha256_file, write_parquet_atomic
from qlib_assets.storage.lake import Lake


@dataclass(frozen=True)
class ScoringSample:
    frame: pl.DataFrame  # instrument, date and the serving feature columns
    path: Path
    sha256: str
    schema_hash: str


@dataclass(frozen=True)
class SampleScores:
    frame: pl.DataFrame  # instrument, date, score in the sample's row order
    seconds: float

    def digest(self) -> str:
        scores = self.frame.get_column("score").to_numpy()
        return hashlib.sha256(scores.tobytes()).hexdigest()


def sample_path(settings: Settings, spec: ModelSpec, schema_hash: str) -> Path:
    return settings.root / "lifecycle" / "samples" / spec.name / f"{schema_hash[:16]}.parquet"


def scoring_sample(settings: Settings, spec: ModelSpec) -> ScoringSample:
    """The spec's fixed sample for the features served now (built on first use, then reused)."""
    columns = serving_features(settings, spec)
    schema = feature_schema_hash(columns)
    path = sample_path(settings, spec, schema)
    if not path.is_file():
        conf = settings.lifecycle
        lake = Lake(settings.lake_dir)
        common = set.intersection(*(set(lake.days(s.asset)) for s in spec.features))
        days = sorted(common)[-conf.sample_sessions :]
        if not days:
            raise FileNotFoundError(f"{spec.ref}: no session has every feature asset to sample")
        features = scoring_features(lake, spec, days)
        chosen = sorted(features.get_column("instrument").unique().to_list())
        chosen = chosen[: conf.sample_instruments]
        frame = features.filter(pl.col("instrument").is_in(chosen)).sort("date", "instrument")
        write_parquet_atomic(frame, path)
    return ScoringSample(pl.read_parquet(path), path, sha256_file(path), schema)


def load_on_cpu(tracking_uri: str, name: str, version: str) -> Scorer:
    """Registered version ``name``/``version`` as a pyfunc on the CPU; a model a GPU process
    saved is mapped onto the CPU (``qlib_assets.models.pyfunc.read_bundle``)."""
    from qlib_assets.models.tracking import load_scorer

    return load_scorer(f"models:/{name}/{version}", tracking_uri)


def score_sample(scorer: Scorer, sample: ScoringSample, label: str = "sample") -> SampleScores:
    started = time.perf_counter()
    frame = score_rows(scorer, sample.frame, label)
    return SampleScores(frame, time.perf_counter() - started)
