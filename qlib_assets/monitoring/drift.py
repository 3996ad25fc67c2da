"""Feature and prediction drift of each session against a reference window, scored by Evidently.

Scores come from Evidently's stat-test registry, the function its ``ValueDrift`` and
``DataDriftPreset`` metrics call for every column, with the method and threshold always passed
explicitly: Evidently's own default switches from K-S (a p-value) to the normed Wasserstein
distance above 1,000 reference rows, so a short validation window or a small sample would
silently change what the score means. The HTML artifact is an Evidently ``Report``
(``DataDriftPreset``, same pinned method) over the session's most drifted columns only: its
plotly widgets cost far more per column than scoring the column
(benchmarks/drift.py --full-report prints both).

Sampling policy: a reference window (one year of 5,000 instruments is ~1.2M rows) is reduced
once to a fixed-seed uniform sample of ``REFERENCE_ROWS`` rows without replacement
(:func:`sample_reference`); :class:`qlib_assets.monitoring.reference_cache.ReferenceCache` keeps
that sample as Parquet per model window, so sessions never re-read or re-sample the window.
The current session is never sampled.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path

import pandas as pd
import polars as pl
from evidently import DataDefinition, Dataset, Report
from evidently.legacy.calculations.stattests.registry import StatTest, get_registered_stattest
from evidently.legacy.core import ColumnType
from evidently.presets import DataDriftPreset

from qlib_assets.storage.atomic import write_with

DEFAULT_METHOD = "wasserstein"
# Evidently's own 0.1 is calibrated for two samples of one population. A single session's cross
# section against a pooled year also carries that day's market-wide move: on the generated
# market (80 instruments, seeds 1, 2, 7) sessions before a regime shift score a median of
# 0.2-0.35 and a 95th percentile of 0.6-0.75 over the 158 Alpha158 columns, while the columns the
# shift moves at once (range, volume against its mean) score 0.6-1.1 after it.
DEFAULT_THRESHOLDS: dict[str, float] = {"wasserstein": 0.45}
REFERENCE_ROWS = 50_000
REFERENCE_SEED = 0
RETRAIN_SHARE = 0.5
TOP_FEATURES = 10
REPORT_COLUMNS = 10
KEY_COLUMNS = ("instrument", "date")

# Evidently's numerical stat tests, by whether a larger score means more drift (a distance) or
# less (a p-value).
_DISTANCES = frozenset({"wasserstein", "psi", "jensenshannon", "hellinger", "kl_div", "ed"})
_P_VALUES = frozenset({"ks", "anderson", "cramer_von_mises", "mannw", "t_test", "es"})

SCORE_SCHEMA: dict[str, pl.DataType] = {
    "date": pl.Date(),
    "column": pl.String(),
    "score": pl.Float64(),
    "drifted": pl.Boolean(),
    "method": pl.String(),
    "threshold": pl.Float64(),
}


@dataclass(frozen=True)
class SessionDrift:
    """One session: how many columns were scored and drifted, the most drifted ones, what to do.

    ``skipped``: columns with no finite value in the session or the reference (not scored).
    """

    date: date
    columns: int
    drifted: int
    share: float
    top_features: tuple[str, ...]
    action: str
    report: Path | None = None
    skipped: tuple[str, ...] = ()


@dataclass(frozen=True)
class DriftResult:
    """``scores``: one row per (session, column), schema :data:`SCORE_SCHEMA`, sorted by date
    then column; ``sessions``: the per-session summaries, oldest first."""

    method: str
    threshold: float
    reference_rows: int
    scores: pl.DataFrame = field(repr=False)
    sessions: tuple[SessionDrift, ...]

    def session(self, day: date | None = None) -> SessionDrift:
        """The summary of ``day`` (default: the latest session)."""
        if day is None:
            return self.sessions[-1]
        for item in self.sessions:
            if item.date == day:
                return item
        raise KeyError(f"no drift computed for {day}")

    def summary(self) -> pl.DataFrame:
        """``date, columns, drifted, share, action, top_features`` (comma-joined), per session."""
        return pl.DataFrame(
            {
                "date": [s.date for s in self.sessions],
                "columns": [s.columns for s in self.sessions],
                "drifted": [s.drifted for s in self.sessions],
                "share": [s.share for s in self.sessions],
                "action": [s.action for s in self.sessions],
                "top_features": [",".join(s.top_features) for s in self.sessions],
            },
            schema={
                "date": pl.Date(),
                "columns": pl.Int64(),
                "drifted": pl.Int64(),
                "share": pl.Float64(),
                "action": pl.String(),
                "top_features": pl.String(),
            },
        )


def higher_is_drift(method: str) -> bool:
    """True for distance methods (drift when score >= threshold), False for p-values."""
    if method in _DISTANCES:
        return True
    if method in _P_VALUES:
        return False
    known = ", ".join(sorted(_DISTANCES | _P_VALUES))
    raise ValueError(f"unknown drift method {method!r}: use one of {known}")


def resolve_threshold(method: str, threshold: float | None) -> float:
    """The explicit threshold, else ours for the method, else Evidently's default for it."""
    higher_is_drift(method)
    if threshold is not None:
        return threshold
    if method in DEFAULT_THRESHOLDS:
        return DEFAULT_THRESHOLDS[method]
    return float(_stattest(method).default_threshold)


def severity(scores: pl.DataFrame) -> pl.Expr:
    """How far past its threshold each score is, as a ratio: >= 1 means drifted.

    Distances: score / threshold. P-values: log(p) / log(threshold), so p = threshold gives 1 and
    smaller p-values give more.
    """
    methods = scores.get_column("method").unique().to_list()
    if len(methods) != 1:
        raise ValueError(f"scores mix drift methods {methods}: severity is not comparable")
    if higher_is_drift(methods[0]):
        return pl.col("score") / pl.col("threshold")
    tiny = 1e-300
    return pl.col("score").clip(lower_bound=tiny).log() / pl.col("threshold").log()


def sample_reference(
    reference: pl.DataFrame, rows: int | None = REFERENCE_ROWS, seed: int = REFERENCE_SEED
) -> pl.DataFrame:
    """A fixed-seed uniform sample of ``rows`` rows without replacement, in the input order.

    A frame of at most ``rows`` rows (or ``rows=None``) is returned whole, so sampling an
    already sampled reference is a no-op.
    """
    if rows is None or reference.height <= rows:
        return reference
    return reference.with_row_index("_row").sample(n=rows, seed=seed).sort("_row").drop("_row")


def feature_columns(frame: pl.DataFrame) -> list[str]:
    """The numeric columns of a feature table, keys excluded, in table order."""
    return [
        name
        for name, dtype in frame.schema.items()
        if name not in KEY_COLUMNS and dtype.is_numeric()
    ]


def suggested_action(share: float, top_features: Sequence[str], retrain_share: float) -> str:
    """``retrain`` when at least ``retrain_share`` of the columns drift; ``investigate <top>``
    when some drift; ``none`` otherwise."""
    if top_features and share >= retrain_share:
        return "retrain"
    if top_features:
        return f"investigate {top_features[0]}"
    return "none"


def feature_drift(
    reference: pl.DataFrame,
    current: pl.DataFrame,
    columns: Sequence[str] | None = None,
    method: str = DEFAULT_METHOD,
    threshold: float | None = None,
    sample: int | None = REFERENCE_ROWS,
    *,
    seed: int = REFERENCE_SEED,
    retrain_share: float = RETRAIN_SHARE,
    top: int = TOP_FEATURES,
    report_dir: Path | None = None,
    report_columns: int = REPORT_COLUMNS,
) -> DriftResult:
    """Drift of every session in ``current`` (grouped by its ``date`` column) against
    ``reference``, column by column.

    ``columns``: default every numeric non-key column of ``current``. ``threshold``: default
    :func:`resolve_threshold`. ``sample``: reference rows kept (:func:`sample_reference`; ``None``
    keeps all). With ``report_dir``, each session's Evidently HTML report over its
    ``report_columns`` most drifted columns is written to ``report_dir/<YYYY-MM-DD>.html``.
    """
    if "date" not in current.columns:
        raise ValueError("current needs a 'date' column: drift is computed per session")
    if current.is_empty():
        raise ValueError("current has no rows")
    names = list(columns) if columns is not None else feature_columns(current)
    missing = [c for c in names if c not in reference.columns or c not in current.columns]
    if missing:
        raise ValueError(f"columns missing from the reference or the current frame: {missing}")
    limit = resolve_threshold(method, threshold)
    test = _stattest(method)
    ref = sample_reference(reference.select(names), sample, seed)
    ref_values = {name: _finite(ref.get_column(name)) for name in names}

    frames = []
    summaries = []
    for (day,), part in sorted(current.partition_by("date", as_dict=True).items()):
        rows = []
        skipped = []
        for name in names:
            values = _finite(part.get_column(name))
            if values.empty or ref_values[name].empty:
                skipped.append(name)
                continue
            result = test(ref_values[name], values, ColumnType.Numerical, limit)
            rows.append((name, float(result.drift_score), bool(result.drifted)))
        scores = pl.DataFrame(
            {
                "date": [day] * len(rows),
                "column": [r[0] for r in rows],
                "score": [r[1] for r in rows],
                "drifted": [r[2] for r in rows],
                "method": [method] * len(rows),
                "threshold": [limit] * len(rows),
            },
            schema=SCORE_SCHEMA,
        )
        frames.append(scores)
        summary = _summarize(day, scores, tuple(skipped), retrain_share, top)
        shown = _ranked(scores).head(report_columns).get_column("column").to_list()
        if report_dir is not None and shown:
            target = report_dir / f"{day.isoformat()}.html"
            _write_report(ref.select(shown), part.select(shown), method, limit, target)
            summary = replace(summary, report=target)
        summaries.append(summary)
    return DriftResult(
        method=method,
        threshold=limit,
        reference_rows=ref.height,
        scores=pl.concat(frames).sort("date", "column"),
        sessions=tuple(summaries),
    )


def prediction_drift(
    reference_scores: pl.DataFrame,
    current_scores: pl.DataFrame,
    method: str = DEFAULT_METHOD,
    threshold: float | None = None,
    sample: int | None = REFERENCE_ROWS,
    *,
    score_column: str = "score",
    report_dir: Path | None = None,
) -> DriftResult:
    """Drift of each session's prediction distribution against the reference predictions
    (a spec's predictions over its validation period): :func:`feature_drift` on one column.

    With a single column the share is 0 or 1, so the action is ``retrain`` or ``none``.
    """
    return feature_drift(
        reference_scores,
        current_scores,
        [score_column],
        method,
        threshold,
        sample,
        report_dir=report_dir,
        report_columns=1,
    )


def _stattest(method: str) -> StatTest:
    return get_registered_stattest(method, ColumnType.Numerical)


def _finite(values: pl.Series) -> pd.Series:
    """Float64 values without null, NaN or infinity, as Evidently's stat tests take them."""
    kept = values.cast(pl.Float64).drop_nulls()
    return kept.filter(kept.is_finite()).to_pandas()


def _ranked(scores: pl.DataFrame) -> pl.DataFrame:
    """Columns from most to least drifted (ties by name, so the order is reproducible)."""
    if scores.is_empty():
        return scores
    return scores.with_columns(severity(scores).alias("_severity")).sort(
        ["_severity", "column"], descending=[True, False]
    )


def _summarize(
    day: date,
    scores: pl.DataFrame,
    skipped: tuple[str, ...],
    retrain_share: float,
    top: int,
) -> SessionDrift:
    drifted = int(scores.get_column("drifted").sum())
    share = drifted / scores.height if scores.height else 0.0
    ranked = _ranked(scores.filter(pl.col("drifted")))
    top_features = tuple(ranked.head(top).get_column("column").to_list())
    return SessionDrift(
        date=day,
        columns=scores.height,
        drifted=drifted,
        share=share,
        top_features=top_features,
        action=suggested_action(share, top_features, retrain_share),
        skipped=skipped,
    )


def _write_report(
    reference: pl.DataFrame, current: pl.DataFrame, method: str, threshold: float, target: Path
) -> None:
    names = reference.columns
    definition = DataDefinition(numerical_columns=names)
    report = Report([DataDriftPreset(columns=names, method=method, threshold=threshold)])
    snapshot = report.run(
        Dataset.from_pandas(current.to_pandas(), data_definition=definition),
        Dataset.from_pandas(reference.to_pandas(), data_definition=definition),
    )
    write_with(target, lambda tmp: snapshot.save_html(str(tmp)))
