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

Calibration (why a session is flagged): one session's cross section against a pooled window
also carries that day's market-wide move, so with one global threshold (0.45) the demo market,
which has no regime shift, flagged 38.6% of its feature columns. Each column's threshold now
comes from the reference window's own session-to-session variation
(:func:`calibrate_thresholds`: 40 of its sessions scored against the reference sample, 90th
percentile x 2), and a session is flagged only when at least 25% of its columns pass their
thresholds (``ALARM_SHARE``). On generated markets (200 instruments, reference one year, the
following ~236 sessions monitored, seed 1) that chosen rule flagged
1.3% of stationary sessions, and flagged a planted ``--shift-date`` (volatility x 1.6, volume x
1.8) on the shift session itself, 33-47% of columns past their thresholds in its first five
sessions. Grid measured on the same scores (stationary false alarms / sessions to detection):
global 0.45 at 25%: 32% / 0 (97% of sessions with some column drifted); 95th pct x 1.25 at 10%:
36% / 0; 95th x 1.5 at 25%: 5.1% / 0; 95th x 2 at 25%: 0% / 2.
"""

from collections.abc import Mapping, Sequence
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
# The uncalibrated fallback. A single session's cross section against a pooled year also carries
# that day's market-wide move, so a global threshold either fires on calm days or misses real
# shifts: :func:`calibrate_thresholds` replaces it per column (see the module docstring).
DEFAULT_THRESHOLDS: dict[str, float] = {"wasserstein": 0.45}
CALIBRATION_QUANTILE = 0.9
CALIBRATION_MARGIN = 2.0
CALIBRATION_SESSIONS = 40
ALARM_SHARE = 0.25
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

    @property
    def alarm(self) -> bool:
        """The session is flagged: enough columns drifted to act on (``action`` is not none)."""
        return self.action != "none"


@dataclass(frozen=True)
class DriftResult:
    """``scores``: one row per (session, column), schema :data:`SCORE_SCHEMA`, sorted by date
    then column; ``sessions``: the per-session summaries, oldest first. ``threshold``: the one
    threshold of every column, None when thresholds are per column (``scores["threshold"]``)."""

    method: str
    threshold: float | None
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

    def alarm_rate(self) -> float:
        """Share of the sessions flagged (:attr:`SessionDrift.alarm`)."""
        return sum(s.alarm for s in self.sessions) / len(self.sessions)

    def detection_delay(self, since: date) -> int | None:
        """Sessions from ``since`` to the first flagged session on or after it (0: flagged on
        ``since``), None when none is."""
        later = [s for s in self.sessions if s.date >= since]
        return next((i for i, s in enumerate(later) if s.alarm), None)

    def summary(self) -> pl.DataFrame:
        """``date, columns, drifted, share, action, alarm, top_features`` (comma-joined), per
        session."""
        return pl.DataFrame(
            {
                "date": [s.date for s in self.sessions],
                "columns": [s.columns for s in self.sessions],
                "drifted": [s.drifted for s in self.sessions],
                "share": [s.share for s in self.sessions],
                "action": [s.action for s in self.sessions],
                "alarm": [s.alarm for s in self.sessions],
                "top_features": [",".join(s.top_features) for s in self.sessions],
            },
            schema={
                "date": pl.Date(),
                "columns": pl.Int64(),
                "drifted": pl.Int64(),
                "share": pl.Float64(),
                "action": pl.String(),
                "alarm": pl.Boolean(),
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


def suggested_action(
    share: float,
    top_features: Sequence[str],
    retrain_share: float,
    alarm_share: float = ALARM_SHARE,
) -> str:
    """``retrain`` when at least ``retrain_share`` of the columns drift; ``investigate <top>``
    when at least ``alarm_share`` do; ``none`` otherwise (a few columns past their thresholds is
    what a calm session with a market-wide move looks like)."""
    if top_features and share >= retrain_share:
        return "retrain"
    if top_features and share >= alarm_share:
        return f"investigate {top_features[0]}"
    return "none"


def session_scores(
    reference: pl.DataFrame,
    sessions: pl.DataFrame,
    columns: Sequence[str],
    method: str = DEFAULT_METHOD,
) -> pl.DataFrame:
    """``date, column, score``: each session of ``sessions`` (grouped by ``date``) scored against
    the whole of ``reference`` with Evidently's pinned stat test, columns without finite values
    left out."""
    test = _stattest(method)
    limit = resolve_threshold(method, None)
    ref_values = {name: _finite(reference.get_column(name)) for name in columns}
    rows: list[tuple[date, str, float]] = []
    for (day,), part in sorted(sessions.partition_by("date", as_dict=True).items()):
        for name in columns:
            values = _finite(part.get_column(name))
            if values.empty or ref_values[name].empty:
                continue
            result = test(ref_values[name], values, ColumnType.Numerical, limit)
            rows.append((day, name, float(result.drift_score)))
    return pl.DataFrame(
        rows, schema={"date": pl.Date(), "column": pl.String(), "score": pl.Float64()}, orient="row"
    )


def calibrate_thresholds(
    reference: pl.DataFrame,
    columns: Sequence[str],
    method: str = DEFAULT_METHOD,
    *,
    sample: int | None = REFERENCE_ROWS,
    seed: int = REFERENCE_SEED,
    sessions: int = CALIBRATION_SESSIONS,
    quantile: float = CALIBRATION_QUANTILE,
    margin: float = CALIBRATION_MARGIN,
) -> dict[str, float]:
    """Per-column thresholds from the reference's own session-to-session variation.

    ``reference`` is the whole reference window with its ``date`` column. Up to ``sessions`` of
    its sessions (evenly spaced) are scored, each whole cross section, against the same
    fixed-seed sample monitoring uses (:func:`session_scores`), so a threshold sees the noise of
    a full session, that day's market-wide move included. A column's threshold is the
    ``quantile`` of its scores times ``margin`` for a distance; for a p-value method the
    ``1 - quantile`` quantile raised to ``margin`` (the same severity, see :func:`severity`).
    Columns never scored keep the method's global threshold.
    """
    if "date" not in reference.columns:
        raise ValueError("calibration needs the reference's 'date' column: it is per session")
    if not 0.0 < quantile < 1.0 or margin <= 0.0:
        raise ValueError(f"quantile must be in (0, 1) and margin > 0, got {quantile}, {margin}")
    days = sorted(reference.get_column("date").unique().to_list())
    if len(days) < 2:
        raise ValueError(f"calibration needs at least 2 reference sessions, got {len(days)}")
    picked = [days[round(i)] for i in _spaced(len(days), sessions)]
    pool = sample_reference(reference.select(columns), sample, seed)
    chosen = reference.filter(pl.col("date").is_in(pl.Series(picked, dtype=pl.Date).implode()))
    scores = session_scores(pool, chosen.select("date", *columns), columns, method)
    distance = higher_is_drift(method)
    level = quantile if distance else 1.0 - quantile
    per_column = scores.group_by("column").agg(pl.col("score").quantile(level, "linear"))
    fallback = resolve_threshold(method, None)
    found = dict(per_column.iter_rows())
    return {
        name: (found[name] * margin if distance else found[name] ** margin)
        if name in found
        else fallback
        for name in columns
    }


def _spaced(count: int, wanted: int) -> list[float]:
    if count <= wanted:
        return [float(i) for i in range(count)]
    step = (count - 1) / (wanted - 1)
    return [i * step for i in range(wanted)]


def feature_drift(
    reference: pl.DataFrame,
    current: pl.DataFrame,
    columns: Sequence[str] | None = None,
    method: str = DEFAULT_METHOD,
    threshold: float | Mapping[str, float] | None = None,
    sample: int | None = REFERENCE_ROWS,
    *,
    seed: int = REFERENCE_SEED,
    retrain_share: float = RETRAIN_SHARE,
    alarm_share: float = ALARM_SHARE,
    top: int = TOP_FEATURES,
    report_dir: Path | None = None,
    report_columns: int = REPORT_COLUMNS,
) -> DriftResult:
    """Drift of every session in ``current`` (grouped by its ``date`` column) against
    ``reference``, column by column.

    ``columns``: default every numeric non-key column of ``current``. ``threshold``: one for
    every column (default :func:`resolve_threshold`) or per column, e.g. from
    :func:`calibrate_thresholds`. ``sample``: reference rows kept (:func:`sample_reference`;
    ``None`` keeps all). A session is flagged (``alarm``) when at least ``alarm_share`` of its
    columns drift. With ``report_dir``, each session's Evidently HTML report over its
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
    limits = _column_thresholds(method, threshold, names)
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
            result = test(ref_values[name], values, ColumnType.Numerical, limits[name])
            rows.append((name, float(result.drift_score), bool(result.drifted)))
        scores = pl.DataFrame(
            {
                "date": [day] * len(rows),
                "column": [r[0] for r in rows],
                "score": [r[1] for r in rows],
                "drifted": [r[2] for r in rows],
                "method": [method] * len(rows),
                "threshold": [limits[r[0]] for r in rows],
            },
            schema=SCORE_SCHEMA,
        )
        frames.append(scores)
        summary = _summarize(day, scores, tuple(skipped), retrain_share, alarm_share, top)
        shown = _ranked(scores).head(report_columns).get_column("column").to_list()
        if report_dir is not None and shown:
            target = report_dir / f"{day.isoformat()}.html"
            _write_report(ref.select(shown), part.select(shown), method, limits, target)
            summary = replace(summary, report=target)
        summaries.append(summary)
    return DriftResult(
        method=method,
        threshold=None if isinstance(threshold, Mapping) else limits[names[0]],
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

    Without an explicit ``threshold`` and with a ``date`` column in the reference, the threshold
    is calibrated on the reference's own sessions (:func:`calibrate_thresholds`, every session).
    With a single column the share is 0 or 1, so the action is ``retrain`` or ``none``.
    """
    limit: float | dict[str, float] | None = threshold
    if threshold is None and "date" in reference_scores.columns:
        sessions = reference_scores.get_column("date").n_unique()
        limit = calibrate_thresholds(
            reference_scores, [score_column], method, sample=sample, sessions=sessions
        )
    return feature_drift(
        reference_scores,
        current_scores,
        [score_column],
        method,
        limit,
        sample,
        report_dir=report_dir,
        report_columns=1,
    )


def _column_thresholds(
    method: str, threshold: float | Mapping[str, float] | None, names: Sequence[str]
) -> dict[str, float]:
    if not isinstance(threshold, Mapping):
        limit = resolve_threshold(method, threshold)
        return dict.fromkeys(names, limit)
    higher_is_drift(method)
    missing = [n for n in names if n not in threshold]
    if missing:
        raise ValueError(f"no threshold for columns {missing[:5]} ({len(missing)} in all)")
    return {n: float(threshold[n]) for n in names}


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
    alarm_share: float,
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
        action=suggested_action(share, top_features, retrain_share, alarm_share),
        skipped=skipped,
    )


def _write_report(
    reference: pl.DataFrame,
    current: pl.DataFrame,
    method: str,
    thresholds: Mapping[str, float],
    target: Path,
) -> None:
    names = reference.columns
    definition = DataDefinition(numerical_columns=names)
    preset = DataDriftPreset(
        columns=names,
        method=method,
        per_column_method=dict.fromkeys(names, method),
        per_column_threshold={n: thresholds[n] for n in names},
    )
    snapshot = Report([preset]).run(
        Dataset.from_pandas(current.to_pandas(), data_definition=definition),
        Dataset.from_pandas(reference.to_pandas(), data_definition=definition),
    )
    write_with(target, lambda tmp: snapshot.save_html(str(tmp)))
