"""Drift and decay for a range of sessions, against each session's online model."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cache
from pathlib import Path

import polars as pl
from mlflow import MlflowClient

from qlib_assets.asset_keys import (
    FEATURE_DRIFT,
    PERFORMANCE_DECAY,
    PREDICTION_DRIFT,
    predictions_asset,
)
from qlib_assets.calendar import sessions, shift_sessions
from qlib_assets.models.platform import audit_log, platform_specs, spec_windows
from qlib_assets.models.registry import ModelRegistry
from qlib_assets.models.rolling import Window, window_for_day
from qlib_assets.models.specs import ModelSpec
from qlib_assets.monitoring.decay import DecayResult, performance_decay
from qlib_assets.monitoring.drift import DriftResult, feature_drift, prediction_drift
from qlib_assets.monitoring.reference_cache import ReferenceCache
from qlib_assets.monitoring.retrain_trigger import Breach, decay_breach
from qlib_assets.online.builders import online_model_uris
from qlib_assets.online.predictions import scoring_features
from qlib_assets.settings import Settings
from qlib_assets.storage.lake import Lake


@dataclass
class DriftRun:
    result: DriftResult | None
    skipped: dict[date, str]


def _monitoring_root(settings: Settings) -> Path:
    return settings.root / "monitoring"


def _by_window(windows: Sequence[Window], days: Sequence[date]) -> dict[str, list[date]]:
    groups: dict[str, list[date]] = {}
    for day in days:
        window = window_for_day(windows, day)
        if window is not None:
            groups.setdefault(window.key, []).append(day)
    return groups


def _trained_windows(settings: Settings, spec: ModelSpec) -> list[Window]:
    trained = online_model_uris(settings, spec)
    return [w for w in spec_windows(settings, spec) if w.key in trained]


def build_feature_drift(settings: Settings, days: Sequence[date]) -> DriftRun:
    """Each session's features against the training segment of its online model's window.

    The reference is sampled once per window and cached, with its per-column thresholds
    calibrated on the window's own sessions (unless ``monitoring.calibrate`` is off); sessions
    with no online model of the monitoring spec are skipped with a reason.
    """
    conf = settings.monitoring
    spec = platform_specs(settings)[conf.spec]
    lake = Lake(settings.lake_dir)
    calendar = sessions(settings.calendar, settings.start_date, days[-1])
    groups = _by_window(_trained_windows(settings, spec), days)
    skipped = {d: f"no trained window of {spec.ref} covers it" for d in days}
    references = ReferenceCache(_monitoring_root(settings) / "reference")
    results: list[DriftResult] = []
    for key, group in groups.items():
        window = next(w for w in spec_windows(settings, spec) if w.key == key)
        current = scoring_features(lake, spec, group)
        columns = [c for c in current.columns if c not in ("instrument", "date")]
        train_days = [d for d in calendar if window.train[0] <= d <= window.train[1]]
        window_frame = cache(lambda d=train_days: scoring_features(lake, spec, d))
        reference = references.get(spec.name, key, columns, window_frame)
        limits = (
            references.thresholds(spec.name, key, columns, window_frame, conf.method)
            if conf.calibrate
            else conf.threshold
        )
        results.append(
            feature_drift(
                reference.frame,
                current,
                columns,
                method=conf.method,
                threshold=limits,
                retrain_share=conf.retrain_share,
                alarm_share=conf.alarm_share,
                report_dir=_monitoring_root(settings) / "reports" / FEATURE_DRIFT,
            )
        )
        for day in group:
            skipped.pop(day, None)
    return DriftRun(_merge(results), skipped)


def _merge(results: list[DriftResult]) -> DriftResult | None:
    if not results:
        return None
    first = results[0]
    return DriftResult(
        method=first.method,
        threshold=first.threshold,
        reference_rows=first.reference_rows,
        scores=pl.concat([r.scores for r in results]).sort("date", "column"),
        sessions=tuple(s for r in results for s in r.sessions),
    )


def _valid_predictions(settings: Settings, model_uri: str) -> pl.DataFrame:
    """``date, score``: the validation-period predictions training logged beside the model (the
    date lets prediction drift calibrate its threshold on the period's own sessions)."""
    name, version = model_uri.removeprefix("models:/").split("/")
    client = MlflowClient(settings.mlflow_uri, settings.mlflow_uri)
    run_id = client.get_model_version(name, version).run_id
    path = client.download_artifacts(run_id, "valid_predictions.csv")
    frame = pl.read_csv(path, try_parse_dates=True)
    return frame.select(
        pl.col("datetime").cast(pl.Date).alias("date"), pl.col("score").cast(pl.Float64)
    )


def build_prediction_drift(settings: Settings, days: Sequence[date]) -> dict[str, DriftRun]:
    """Each spec's score distribution per session against its online model's valid scores."""
    conf = settings.monitoring
    lake = Lake(settings.lake_dir)
    runs: dict[str, DriftRun] = {}
    for name, spec in platform_specs(settings).items():
        asset = predictions_asset(name)
        have = set(lake.days(asset))
        uris = online_model_uris(settings, spec)
        groups = _by_window(_trained_windows(settings, spec), [d for d in days if d in have])
        results = []
        for key, group in groups.items():
            current = lake.read_days(asset, group)
            if current.is_empty():
                continue
            results.append(
                prediction_drift(
                    _valid_predictions(settings, uris[key]),
                    current,
                    method=conf.method,
                    threshold=None if conf.calibrate else conf.threshold,
                    report_dir=_monitoring_root(settings) / "reports" / PREDICTION_DRIFT / name,
                )
            )
        covered = {s.date for r in results for s in r.sessions}
        skipped = {d: "no predictions from a trained window" for d in days if d not in covered}
        runs[name] = DriftRun(_merge(results), skipped)
    return runs


def build_performance_decay(settings: Settings, days: Sequence[date]) -> dict[str, DecayResult]:
    """Rolling IC of each spec's predictions against its online model's valid IC level."""
    conf = settings.monitoring
    lake = Lake(settings.lake_dir)
    first = shift_sessions(settings.calendar, days[0], -(conf.decay_window - 1))
    window_days = [
        d for d in sessions(settings.calendar, first, days[-1]) if lake.exists("labels", d)
    ]
    missing = [d for d in days if not lake.exists("labels", d)]
    if missing:
        raise FileNotFoundError(
            f"labels are not materialized for {missing[0]}: "
            "performance decay runs two sessions behind"
        )
    labels = lake.read_days("labels", window_days)
    registry = ModelRegistry(settings.mlflow_uri, audit_log(settings))
    results: dict[str, DecayResult] = {}
    for name, spec in platform_specs(settings).items():
        asset = predictions_asset(name)
        have = set(lake.days(asset))
        scored = [d for d in window_days if d in have]
        window = window_for_day(_trained_windows(settings, spec), days[-1])
        if not scored or window is None:
            continue
        uri = online_model_uris(settings, spec)[window.key]
        tags = registry.version(name, uri.rsplit("/", 1)[1]).tags
        result = performance_decay(
            lake.read_days(asset, scored),
            labels,
            float(tags["metric.valid_ic"]),
            valid_rank_ic=float(tags["metric.valid_rank_ic"])
            if "metric.valid_rank_ic" in tags
            else None,
            window=conf.decay_window,
            ratio=conf.decay_ratio,
            floor=conf.decay_floor,
        )
        rows = result.rows.filter(pl.col("date").is_in(list(days)))
        results[name] = DecayResult(
            rows=rows,
            breached=result.breached,
            breach_dates=tuple(d for d in result.breach_dates if d in set(days)),
            evidence=result.evidence,
        )
    return results


def latest_breaches(settings: Settings) -> list[Breach]:
    """Breaches on the last materialized session of performance_decay (recomputed: a window of
    20 sessions is cheap) and of feature_drift (its stored scores)."""
    lake = Lake(settings.lake_dir)
    breaches: list[Breach] = []
    decay_days = lake.days(PERFORMANCE_DECAY)
    if decay_days:
        for name, result in build_performance_decay(settings, [decay_days[-1]]).items():
            breach = decay_breach(name, result)
            if breach is not None:
                breaches.append(breach)
    drift_days = lake.days(FEATURE_DRIFT)
    if drift_days:
        scores = lake.read_days(FEATURE_DRIFT, [drift_days[-1]])
        share = float(scores.get_column("drifted").mean() or 0.0)
        if share >= settings.monitoring.retrain_share:
            top = scores.sort("score", descending=True).head(5).get_column("column").to_list()
            breaches.append(
                Breach(
                    spec=settings.monitoring.spec,
                    session=drift_days[-1],
                    kind="drift",
                    reason=f"{share:.0%} of feature columns drifted",
                    evidence={"share": share, "top_features": top},
                )
            )
    return breaches


def cooldown(settings: Settings) -> timedelta:
    return timedelta(days=settings.monitoring.cooldown_days)
