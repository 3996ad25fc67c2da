"""Seed 000's OnlineManager.simulate: replay history one session at a time.

The replay runs in its own home (``<home>/simulations/<start>_<end>``: its own lake, MLflow and
audit table). At the close of each session d, in the order of the daily loop:

1. its files land: the session's feature partitions and the labels of the session two back (the
   label of d-2 needs the bars of d) are linked from the source lake, so nothing of the future is
   visible; the partitions depend only on bars up to their session, as the chain computes them;
2. every rolling window whose train and valid labels are now known, and whose test segment has
   not ended, trains (``delay`` sessions later when asked, as Qlib's simulate can), and passes the
   gates and the spec's promotion policy (``review_candidate``, the model asset's code);
3. the predictions of d are served (``serve_predictions``, the predictions asset's code), the
   challenger scores d in shadow;
4. the lifecycle review of d-2 runs (shadow test, rollback watch: ``daily_review``);
5. monitoring: the champion's rolling IC against its decay bound; a breach outside the cool-down
   retrains (``retrain``, the retrain job's code).

The track record holds, per session and spec, the served version, how it was decided, the daily
IC once its label is known, and the events (promotions, rejections, fallbacks, rollbacks,
retrains).
"""

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

import polars as pl

from qlib_assets.asset_keys import shadow_asset
from qlib_assets.calendar import sessions, shift_sessions
from qlib_assets.lifecycle.champion import champion
from qlib_assets.lifecycle.decisions import daily_review
from qlib_assets.lifecycle.policies import review_candidate
from qlib_assets.lifecycle.registry_access import registry_of
from qlib_assets.lifecycle.retrain import retrain
from qlib_assets.lifecycle.served import serve_predictions, serve_shadow
from qlib_assets.lifecycle.shadow import session_ic
from qlib_assets.models.dataset import load_window_frame, window_days
from qlib_assets.models.platform import audit_log, platform_sessions, platform_specs, spec_windows
from qlib_assets.models.rolling import Window
from qlib_assets.models.specs import ModelSpec
from qlib_assets.models.tracking import train_and_track
from qlib_assets.monitoring.decay import performance_decay
from qlib_assets.online.builders import predictions_asset
from qlib_assets.settings import Settings
from qlib_assets.storage.lake import Lake

TRACK_SCHEMA: dict[str, pl.DataType] = {
    "date": pl.Date(),
    "spec": pl.String(),
    "served_version": pl.String(),
    "decided_by": pl.String(),
    "ic": pl.Float64(),
    "events": pl.String(),
}


@dataclass
class Simulation:
    settings: Settings  # the simulation's own home
    track: pl.DataFrame
    served: dict[str, pl.DataFrame]  # spec -> the rows served session by session
    events: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        words = ("promoted", "rejected", "fallback", "rolled_back", "retrain", "challenger")
        return {w: sum(w in e for e in self.events) for w in words}


def simulation_settings(settings: Settings, start: date, end: date) -> Settings:
    home = settings.root / "simulations" / f"{start.isoformat()}_{end.isoformat()}"
    if home.exists():
        raise FileExistsError(f"{home} exists: a simulation of {start}..{end} was run; remove it")
    sim = settings.model_copy(update={"home": home, "audit_url": None})
    sim.__dict__.pop("root", None)  # the cached property of the source home
    sim.ensure_dirs()
    return sim


def _land(source: Lake, target: Lake, asset: str, day: date) -> None:
    if source.exists(asset, day) and not target.exists(asset, day):
        path = target.path(asset, day)
        path.parent.mkdir(parents=True, exist_ok=True)
        os.link(source.path(asset, day), path)


def _due_windows(
    sim: Settings, spec: ModelSpec, day: date, last: date, trained: set[str], delay: int
) -> list[Window]:
    labelled = Lake(sim.lake_dir).days(spec.label.asset)
    if not labelled:
        return []
    calendar = platform_sessions(sim)
    known = labelled[-1]
    due = []
    for window in spec_windows(sim, spec):
        if window.key in trained or window.test[1] < day or window.test[0] > last:
            continue
        if window.data_end > known:
            continue
        ready = calendar[min(calendar.index(window.data_end) + 2 + delay, len(calendar) - 1)]
        if ready <= day:
            due.append(window)
    return due


def _train(sim: Settings, spec: ModelSpec, window: Window) -> str:
    days = window_days(window, platform_sessions(sim))
    tracked = train_and_track(
        spec,
        window,
        load_window_frame(Lake(sim.lake_dir), spec, days),
        tracking_uri=sim.mlflow_uri,
        audit=audit_log(sim),
        run_tags={"simulation": str(sim.root)},
        actor="simulation",
        artifact_root=sim.mlflow_artifacts,
    )
    return tracked.model_version


def simulate(
    settings: Settings,
    start: date,
    end: date,
    delay: int = 0,
    on_session: Callable[[date, list[str]], None] | None = None,
) -> Simulation:
    """Replay ``start``..``end`` over the lake of ``settings`` (see the module doc)."""
    sim = simulation_settings(settings, start, end)
    source, lake = Lake(settings.lake_dir), Lake(sim.lake_dir)
    specs = platform_specs(settings)
    feature_assets = sorted({s.asset for spec in specs.values() for s in spec.features})
    label_assets = sorted({spec.label.asset for spec in specs.values()})
    days = sessions(settings.calendar, start, end)
    warm = sessions(
        settings.calendar, settings.start_date, shift_sessions(settings.calendar, start, -1)
    )
    for day in warm:  # history before the replay: features, and labels known at its start
        for asset in feature_assets:
            _land(source, lake, asset, day)
    for day in warm[:-2]:
        for asset in label_assets:
            _land(source, lake, asset, day)

    trained: dict[str, set[str]] = {name: set() for name in specs}
    last_retrain: dict[str, date] = {}
    served: dict[str, list[pl.DataFrame]] = {name: [] for name in specs}
    rows: list[dict[str, object]] = []
    events: list[str] = []
    for day in days:
        today: list[str] = []
        labelled_day = shift_sessions(settings.calendar, day, -2)
        for asset in feature_assets:
            _land(source, lake, asset, day)
        for asset in label_assets:
            _land(source, lake, asset, labelled_day)
        for name, spec in specs.items():
            mine: list[str] = []
            for window in _due_windows(sim, spec, day, days[-1], trained[name], delay):
                version = _train(sim, spec, window)
                trained[name].add(window.key)
                decision = review_candidate(sim, spec, version, actor="simulation")
                mine.append(f"v{version} (window {window.key}) {decision.action}")
            result = serve_predictions(sim, spec, [day])
            lake.write_days(predictions_asset(name), result.frame, [day])
            served[name].append(result.frame)
            for fb in result.fallbacks:
                mine.append(f"fallback v{fb.primary} -> v{fb.used}")
            shadow = serve_shadow(sim, spec, [day])
            lake.write_days(shadow_asset(name), shadow.frame, [day])
            plan = result.plan[day]
            rows.append(
                {
                    "date": day,
                    "spec": name,
                    "served_version": result.used.get(day),
                    "decided_by": plan.source,
                    "ic": None,
                    "events": "",
                }
            )
            if lake.exists(spec.label.asset, labelled_day):
                for decision in daily_review(sim, spec, labelled_day):
                    if decision.action != "waiting":
                        mine.append(f"v{decision.version} {decision.action}: {decision.reason}")
                breach = _decay_breach(sim, spec, labelled_day)
                cooled = name not in last_retrain or (day - last_retrain[name]).days >= (
                    sim.monitoring.cooldown_days
                )
                if breach and cooled:
                    done = retrain(sim, spec, breach, {"simulation": str(sim.root)})
                    last_retrain[name] = day
                    mine.append(
                        f"retrain v{done.tracked.model_version} "
                        f"(window {done.window.key}) {done.decision.action}: {breach}"
                    )
            rows[-1]["events"] = "; ".join(mine)
            today.extend(f"{name} {e}" for e in mine)
        events.extend(f"{day} {e}" for e in today)
        if on_session is not None:
            on_session(day, today)

    track = pl.DataFrame(rows, schema=TRACK_SCHEMA)
    track = _with_ic(sim, specs, track)
    frames = {name: pl.concat(parts).sort("date", "instrument") for name, parts in served.items()}
    path = sim.root / "track_record.parquet"
    track.write_parquet(path)
    return Simulation(sim, track, frames, events)


def _decay_breach(sim: Settings, spec: ModelSpec, as_of: date) -> str | None:
    """The champion's rolling IC over the last ``decay_window`` labelled sessions it served."""
    current = champion(sim, spec.name)
    if current is None:
        return None
    lake = Lake(sim.lake_dir)
    conf = sim.monitoring
    labelled = [d for d in lake.days(spec.label.asset) if d <= as_of][-conf.decay_window :]
    have = set(lake.days(predictions_asset(spec.name)))
    days = [d for d in labelled if d in have]
    if len(days) < conf.decay_window:
        return None
    preds = lake.read_days(predictions_asset(spec.name), days).filter(
        pl.col("model_version") == current
    )
    if preds.get_column("date").n_unique() < conf.decay_window:
        return None
    labels = lake.read_days(spec.label.asset, days).rename({spec.label.column: "label"})
    tags = registry_of(sim).version(spec.name, current).tags
    result = performance_decay(
        preds,
        labels,
        float(tags["metric.valid_ic"]),
        window=conf.decay_window,
        ratio=conf.decay_ratio,
        floor=conf.decay_floor,
    )
    if not result.breached:
        return None
    ev = result.evidence
    return f"rolling IC {ev['rolling_ic']:.4f} below bound {ev['ic_bound']:.4f}"


def _with_ic(sim: Settings, specs: dict[str, ModelSpec], track: pl.DataFrame) -> pl.DataFrame:
    lake = Lake(sim.lake_dir)
    parts = []
    for name, spec in specs.items():
        labelled = set(lake.days(spec.label.asset))
        days = [d for d in track.filter(pl.col("spec") == name)["date"] if d in labelled]
        if not days:
            continue
        preds = lake.read_days(predictions_asset(name), days)
        if preds.is_empty():
            continue
        labels = lake.read_days(spec.label.asset, days).rename({spec.label.column: "label"})
        parts.append(session_ic(preds, labels).with_columns(pl.lit(name).alias("spec")))
    if not parts:
        return track
    ic = pl.concat(parts).rename({"ic": "daily_ic"})
    return (
        track.join(ic, on=["date", "spec"], how="left")
        .with_columns(pl.col("daily_ic").alias("ic"))
        .drop("daily_ic")
        .select(list(TRACK_SCHEMA))
    )
