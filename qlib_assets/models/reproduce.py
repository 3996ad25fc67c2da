"""Retrain a registered model version from the exact bytes it was trained on, and compare.

The version's lineage names every feature and label partition it read by SHA-256, and the
raw_bars partition versions they were computed from. Those bytes come back from the lake's
kept versions (so a later correction of the data does not matter), the frame is rebuilt and
checked against the recorded digests, the model is retrained with the recorded spec, and its
valid-segment predictions are compared with the ones the original run logged.

Identical predictions are expected for LightGBM and XGBoost (deterministic on CPU with the
same thread count); the MLP's stated tolerance covers float reductions whose order PyTorch
does not fix across runs.
"""

import io
import shutil
import tempfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import mlflow
import pandas as pd
import polars as pl
from mlflow.exceptions import MlflowException

from qlib_assets.models.dataset import load_window_frame
from qlib_assets.models.registry import ModelRegistry
from qlib_assets.models.rolling import Window
from qlib_assets.models.specs import ModelSpec, spec_versions
from qlib_assets.settings import Settings
from qlib_assets.storage.lake import Lake
from qlib_assets.storage.restore import rebuild_spans
from qlib_assets.storage.versions import VersionError

RAW_BARS = "raw_bars"
PREDICTIONS_ARTIFACT = "valid_predictions.csv"
# Max absolute difference of valid-segment scores accepted per model class.
TOLERANCE = {"LGBModel": 0.0, "XGBModel": 0.0, "DNNModelPytorch": 1e-5}
DEFAULT_TOLERANCE = 1e-6


class ReproductionError(ValueError):
    """The version cannot be reproduced: unknown, unkept inputs, or a different spec."""


@dataclass(frozen=True)
class Rederived:
    """One input asset recomputed from the restored raw_bars versions."""

    partitions: int
    identical: int  # partitions whose recomputed bytes equal the recorded SHA-256
    max_abs_diff: float  # over every value; inf when rows or missing values differ


@dataclass(frozen=True)
class Reproduction:
    model: str
    version: str
    spec: str
    window: str
    inputs: dict[str, int]  # asset -> partitions restored and verified
    raw_bars: int  # raw_bars partition versions recorded and still kept
    rows: int
    max_abs_diff: float
    tolerance: float
    rederived: dict[str, Rederived] | None = None

    @property
    def reproduced(self) -> bool:
        return self.max_abs_diff <= self.tolerance


def _segment(text: str) -> tuple[date, date]:
    start, end = text.split("..")
    return date.fromisoformat(start), date.fromisoformat(end)


def recorded_window(tags: dict[str, str]) -> Window:
    return Window(_segment(tags["train"]), _segment(tags["valid"]), _segment(tags["test"]))


def recorded_spec(tags: dict[str, str], specs_dir: Path) -> ModelSpec:
    """The spec version the model was trained with, checked by its digest."""
    name, version, digest = tags["spec"], int(tags["spec_version"]), tags["spec_digest"]
    for spec in spec_versions(name, specs_dir):
        if spec.version == version:
            if spec.digest() != digest:
                raise ReproductionError(
                    f"spec {name} v{version} in {specs_dir} has digest {spec.digest()[:12]}, "
                    f"the model was trained with {digest[:12]}: the spec file was changed"
                )
            return spec
    raise ReproductionError(f"spec {name} v{version} is not in {specs_dir}")


def restore_inputs(
    lake: Lake, partitions: dict[str, dict[str, str]], raw_bars: dict[str, dict[str, str]], to: Path
) -> tuple[Lake, dict[str, int]]:
    """Copy the recorded partition bytes into the lake at ``to``; each is checked kept."""
    restored = Lake(to)
    counts: dict[str, int] = {}
    wanted = {
        **{(a, d): sha for a, days in partitions.items() for d, sha in days.items()},
        **{(RAW_BARS, d): v["sha256"] for d, v in raw_bars.items()},
    }
    for (asset, day), sha in sorted(wanted.items()):
        version = lake.versions.find(asset, date.fromisoformat(day), sha)
        target = restored.path(asset, version.day)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(lake.versions.open_version(version), target)
        counts[asset] = counts.get(asset, 0) + 1
    return restored, counts


def rederive_inputs(
    settings: Settings, home: Path, partitions: dict[str, dict[str, str]], scratch: Path
) -> dict[str, Rederived]:
    """Recompute each recorded feature and label partition from the raw_bars under ``home``
    (with the current code and ``settings``' feature parameters) and compare with the recorded
    bytes: the lineage from raw data to the model's inputs, checked."""
    from qlib_assets.features.builders import build_alpha158, build_indicators, build_labels

    builders = {"alpha158": build_alpha158, "indicators": build_indicators, "labels": build_labels}
    unknown = sorted(set(partitions) - set(builders))
    if unknown:
        raise ReproductionError(f"no builder recomputes {', '.join(unknown)} from raw_bars")
    there = Settings(**{**settings.model_dump(exclude={"home"}), "home": home})
    rebuild_spans(Lake(there.lake_dir))
    recorded, again = Lake(there.lake_dir), Lake(scratch)
    found: dict[str, Rederived] = {}
    for asset, days_sha in sorted(partitions.items()):
        days = sorted(date.fromisoformat(d) for d in days_sha)
        hashes = again.write_days(asset, builders[asset](there, days), days)
        identical = sum(hashes[d] == days_sha[d.isoformat()] for d in days)
        old, new = (x.read_days(asset, days).sort("date", "instrument") for x in (recorded, again))
        found[asset] = Rederived(len(days), identical, _max_diff(old, new))
    return found


def _max_diff(old: pl.DataFrame, new: pl.DataFrame) -> float:
    """Largest absolute difference of the value columns; inf when rows, columns or the places
    of missing values differ."""
    keys = ["instrument", "date"]
    if old.columns != new.columns or not old.select(keys).equals(new.select(keys)):
        return float("inf")
    worst = 0.0
    for column in (c for c in old.columns if c not in keys):
        a, b = old[column].cast(pl.Float64), new[column].cast(pl.Float64)
        missing_a, missing_b = a.is_null() | a.is_nan(), b.is_null() | b.is_nan()
        if not missing_a.equals(missing_b):
            return float("inf")
        diff = (a - b).filter(~missing_a).abs().max()
        worst = max(worst, float(diff) if diff is not None else 0.0)  # type: ignore[arg-type]
    return worst


def _scores(csv_text: str) -> pd.Series:
    frame = pd.read_csv(io.StringIO(csv_text))
    keys = [c for c in frame.columns if c != "score"]
    return frame.set_index(keys)["score"].sort_index()


def reproduce_version(
    registry: ModelRegistry,
    lake: Lake,
    name: str,
    version: str,
    spec: ModelSpec | None = None,
    specs_dir: Path | None = None,
    keep_inputs: Path | None = None,
    rederive_with: Settings | None = None,
) -> Reproduction:
    """Restore version ``version`` of ``name``'s inputs, retrain, compare predictions.

    ``spec``: the spec to train with (default: the recorded version from ``specs_dir``).
    ``keep_inputs``: leave the restored inputs in this (new or empty) folder, as a home
    (``lake/<asset>/<day>.parquet``). ``rederive_with``: also recompute the inputs from the
    restored raw_bars with these settings' feature parameters (``rederive_inputs``).
    """
    from qlib_assets.models.training import train_window

    try:
        mv = registry.version(name, version)
    except MlflowException as exc:
        raise ReproductionError(f"model {name!r} has no version {version!r}") from exc
    tags = dict(mv.tags)
    if "train" not in tags or not mv.run_id:
        raise ReproductionError(f"{name} v{version} carries no training window or run")
    lineage = registry.lineage(name, version)
    if not lineage.raw_bars:
        raise ReproductionError(
            f"{name} v{version} was trained before raw_bars versions were recorded in lineage"
        )
    if spec is None:
        if specs_dir is None:
            raise ReproductionError("give the spec or the folder of spec versions")
        spec = recorded_spec(tags, specs_dir)
    if keep_inputs is not None and keep_inputs.exists() and any(keep_inputs.iterdir()):
        raise ReproductionError(f"{keep_inputs}: the inputs folder exists and is not empty")
    scratch = Path(tempfile.mkdtemp(prefix="qlib_reproduce_"))
    home = keep_inputs or scratch / "home"
    try:
        try:
            restored, counts = restore_inputs(
                lake, lineage.partitions, lineage.raw_bars, home / "lake"
            )
        except VersionError as exc:
            raise ReproductionError(f"{name} v{version}: {exc}") from exc
        first_asset = spec.features[0].asset
        days = sorted(date.fromisoformat(d) for d in lineage.partitions[first_asset])
        data = load_window_frame(restored, spec, days)
        for asset in data.manifest.assets():
            recorded = tags.get(f"data_version.{asset}")
            if recorded is not None and data.manifest.digest(asset) != recorded:
                raise ReproductionError(
                    f"{name} v{version}: restored {asset} has digest "
                    f"{data.manifest.digest(asset)[:12]}, recorded {recorded[:12]}"
                )
        result = train_window(spec, recorded_window(tags), data)
        rederived = (
            None
            if rederive_with is None
            else rederive_inputs(rederive_with, home, lineage.partitions, scratch / "rederived")
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    logged = mlflow.artifacts.download_artifacts(
        run_id=mv.run_id, artifact_path=PREDICTIONS_ARTIFACT, tracking_uri=registry.tracking_uri
    )
    original = _scores(Path(logged).read_text())
    again = _scores(result.valid_pred.rename("score").reset_index().to_csv(index=False))
    if not original.index.equals(again.index):
        raise ReproductionError(
            f"{name} v{version}: retrained predictions cover {len(again)} rows, "
            f"the original {len(original)}"
        )
    diff = float((original - again).abs().max()) if len(original) else 0.0
    return Reproduction(
        model=name,
        version=str(version),
        spec=spec.ref,
        window=tags.get("window", ""),
        inputs={a: n for a, n in counts.items() if a != RAW_BARS},
        raw_bars=counts.get(RAW_BARS, 0),
        rows=len(original),
        max_abs_diff=diff,
        tolerance=TOLERANCE.get(spec.model.class_name, DEFAULT_TOLERANCE),
        rederived=rederived,
    )
