"""Online predictions of one model spec per session, with Qlib PredUpdater semantics.

The prediction of session d comes from the spec's online model for d: the latest rolling window
whose test segment holds d. Edge cases follow PredUpdater: a request past the latest available
session is clipped to it with a warning; a session without an online model (before the first
test segment, or whose window is not trained yet) is skipped with its reason instead of failing
the whole range. Each window's model is loaded once for all of its sessions.

``predict_sessions`` is pure over its inputs: the rows of a session depend only on that session's
features and its window's model, so re-materializing a sub-range gives the same rows as the same
sessions of a larger run, and the caller writes exactly the sessions it asked for.
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Protocol

import pandas as pd
import polars as pl

from qlib_assets.models.rolling import Window
from qlib_assets.models.specs import ModelSpec
from qlib_assets.models.tracking import load_scorer
from qlib_assets.storage.lake import Lake

KEYS = ("instrument", "date")
SCORE = "score"
PREDICTION_SCHEMA: dict[str, pl.DataType] = {
    "instrument": pl.String(),
    "date": pl.Date(),
    SCORE: pl.Float64(),
}


class Scorer(Protocol):
    """What a loaded model offers: ``predict`` of a pandas frame with keys and features."""

    def predict(self, data: pd.DataFrame) -> pd.DataFrame: ...


ScorerLoader = Callable[[str], Scorer]


@dataclass(frozen=True)
class PredictionResult:
    """Scores of the predicted sessions and why the other requested sessions have none.

    ``frame``: ``instrument, date, score`` sorted by date then instrument. ``skipped``: session ->
    reason. ``clipped_to``: the latest available session when the request went past it.
    ``models``: window key -> model URI of the windows used.
    """

    frame: pl.DataFrame
    skipped: dict[date, str] = field(default_factory=dict)
    clipped_to: date | None = None
    warnings: list[str] = field(default_factory=list)
    models: dict[str, str] = field(default_factory=dict)

    @property
    def sessions(self) -> list[date]:
        return sorted(self.frame.get_column("date").unique().to_list())


def online_window(windows: Sequence[Window], day: date) -> Window | None:
    """The latest window (by test start) whose test segment holds ``day``."""
    holding = [w for w in windows if w.test[0] <= day <= w.test[1]]
    return max(holding, key=lambda w: w.test[0]) if holding else None


def scoring_features(lake: Lake, spec: ModelSpec, days: Sequence[date]) -> pl.DataFrame:
    """The spec's feature columns for ``days``, joined on ``(instrument, date)`` like training.

    Rows follow the first feature asset; values are cast to float32 as the training frame is.
    Sessions without a file of the first asset are absent (``predict_sessions`` skips them).
    """
    existing = [d for d in days if lake.exists(spec.features[0].asset, d)]
    if not existing:
        return pl.DataFrame(schema={"instrument": pl.String(), "date": pl.Date()})
    joined: pl.DataFrame | None = None
    for source in spec.features:
        part = lake.read_days(source.asset, existing)
        columns = source.columns or tuple(c for c in part.columns if c not in KEYS)
        part = part.select(*KEYS, *(pl.col(c).cast(pl.Float32) for c in columns))
        joined = part if joined is None else joined.join(part, on=KEYS, how="left")
    assert joined is not None
    return joined.sort("date", "instrument")


def _input_columns(scorer: Scorer) -> list[str] | None:
    metadata = getattr(scorer, "metadata", None)
    schema = metadata.get_input_schema() if metadata is not None else None
    return None if schema is None else list(schema.input_names())


def score_rows(scorer: Scorer, rows: pl.DataFrame, uri: str) -> pl.DataFrame:
    """``instrument, date, score`` of ``rows`` (keys and at least the model's features)."""
    wanted = _input_columns(scorer)
    if wanted is not None:
        missing = [c for c in wanted if c not in rows.columns]
        if missing:
            raise ValueError(
                f"{uri} reads columns missing from the features: {missing[:5]}"
                f"{' ...' if len(missing) > 5 else ''} ({len(missing)} in all)"
            )
        rows = rows.select(wanted)
    scores = scorer.predict(rows.to_pandas())
    return rows.select(*KEYS).with_columns(
        pl.Series(SCORE, scores[SCORE].to_numpy(), dtype=pl.Float64)
    )


def clip_to_latest(
    spec_name: str, days: Sequence[date], latest: date
) -> tuple[list[date], date | None, list[str]]:
    """PredUpdater's clipping: the requested sessions up to ``latest`` (the last session with
    features), the session clipped to when the request went past it, and the warning saying so.
    """
    requested = sorted(set(days))
    if not requested or requested[-1] <= latest:
        return requested, None, []
    dropped = [d for d in requested if d > latest]
    warning = (
        f"{spec_name}: requested up to {dropped[-1]}, past the latest session with features "
        f"{latest}; clipped to it ({len(dropped)} session(s) not predicted)"
    )
    return [d for d in requested if d <= latest], latest, [warning]


def predict_sessions(
    spec: ModelSpec,
    windows: Sequence[Window],
    model_uris: Mapping[str, str],
    features: pl.DataFrame,
    days: Sequence[date],
    latest_available: date,
    tracking_uri: str,
    loader: ScorerLoader | None = None,
) -> PredictionResult:
    """Score ``days`` with the spec's online model of each session.

    ``windows``: the spec's rolling windows; ``model_uris``: window key -> model URI of the
    windows trained so far; ``features``: ``instrument, date`` and the model's feature columns
    for (at least) ``days``; ``latest_available``: the last session whose features exist.
    ``loader`` turns a URI into a scorer (default: the MLflow pyfunc via ``load_scorer``).
    """
    load = loader or (lambda uri: load_scorer(uri, tracking_uri))
    requested, clipped_to, warnings = clip_to_latest(spec.name, days, latest_available)
    if features.select(*KEYS).is_duplicated().any():
        raise ValueError("features hold a duplicated (instrument, date) row")
    with_features = set(features.get_column("date").unique().to_list())
    skipped: dict[date, str] = {}
    by_window: dict[str, list[date]] = {}
    for day in requested:
        window = online_window(windows, day)
        if window is None:
            first = min((w.test[0] for w in windows), default=None)
            skipped[day] = (
                f"no rolling window of {spec.name} has a test segment holding the session "
                f"(first test segment starts {first})"
            )
        elif window.key not in model_uris:
            skipped[day] = (
                f"no online model yet: window {window.key} of {spec.name} has not been trained"
            )
        elif day not in with_features:
            skipped[day] = "no feature rows for the session"
        else:
            by_window.setdefault(window.key, []).append(day)
    # One warning per reason, not per session: a long backfill would otherwise log thousands.
    by_reason: dict[str, list[date]] = {}
    for day, reason in skipped.items():
        by_reason.setdefault(reason, []).append(day)
    for reason, skipped_days in by_reason.items():
        warnings.append(
            f"skipped {len(skipped_days)} session(s) {skipped_days[0]}..{skipped_days[-1]}: "
            f"{reason}"
        )

    parts = []
    used: dict[str, str] = {}
    for key, window_days in by_window.items():
        uri = model_uris[key]
        rows = features.filter(
            pl.col("date").is_in(pl.Series(window_days, dtype=pl.Date).implode())
        )
        parts.append(score_rows(load(uri), rows, uri))
        used[key] = uri
    frame = (
        pl.concat(parts).sort("date", "instrument")
        if parts
        else pl.DataFrame(schema=PREDICTION_SCHEMA)
    )
    return PredictionResult(
        frame=frame.select(pl.col(n).cast(t) for n, t in PREDICTION_SCHEMA.items()),
        skipped=skipped,
        clipped_to=clipped_to,
        warnings=warnings,
        models=used,
    )
