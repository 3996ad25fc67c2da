"""The daily graph of a market as a few runs, for comparing deployments of the same work.

Stages follow the platform's own order: market data and features over the range, labels up to
two sessions before its end, one rolling window of a spec, then its predictions and the signal
over that window's test segment. ``busy_seconds`` tells how much of a run's wall time some
asset body was executing (from ``resource_usage``); the rest is orchestration overhead.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import yaml

from qlib_assets.models.platform import spec_windows
from qlib_assets.models.specs import SPECS_DIR, load_specs
from qlib_assets.settings import Settings

QUICK_SPEC = "lgbm_alpha158"


@dataclass(frozen=True)
class Stage:
    assets: tuple[str, ...]
    first: str
    last: str | None  # None: the single partition ``first``


def write_quick_spec(folder: Path, spec_name: str = QUICK_SPEC) -> Path:
    """The shipped spec on a short sliding layout, one thread, few rounds: fast to train."""
    folder.mkdir(parents=True, exist_ok=True)
    spec = yaml.safe_load((SPECS_DIR / f"{spec_name}.yaml").read_text())
    spec["model"]["kwargs"] |= {"num_threads": 1, "num_boost_round": 60, "min_data_in_leaf": 20}
    spec["rolling"] = {
        "step": 30,
        "type": "sliding",
        "train_sessions": 80,
        "valid_sessions": 20,
        "trunc_days": 3,
    }
    (folder / f"{spec_name}.yaml").write_text(yaml.safe_dump(spec))
    return folder


def daily_graph_stages(
    settings: Settings, days: Sequence[date], spec_name: str = QUICK_SPEC
) -> list[Stage]:
    spec = load_specs(settings.specs_dir)[spec_name]
    labelled = days[-3]
    window = next(w for w in spec_windows(settings, spec) if w.test[1] <= labelled)
    first, last = days[0].isoformat(), days[-1].isoformat()
    return [
        Stage(("raw_bars", "qlib_dataset", "indicators", "alpha158"), first, last),
        Stage(("labels",), first, labelled.isoformat()),
        Stage((f"model_{spec_name}",), window.key, None),
        Stage(
            (f"predictions_{spec_name}", "signal"),
            window.test[0].isoformat(),
            window.test[1].isoformat(),
        ),
    ]


def busy_seconds(usage: pl.DataFrame) -> float:
    """Seconds during which at least one of the measured steps was running (interval union)."""
    if usage.height == 0:
        return 0.0
    intervals = sorted(
        (end - timedelta(seconds=wall), end)
        for end, wall in usage.select("at", "wall_seconds").iter_rows()
    )
    total, current_start, current_end = 0.0, *intervals[0]
    for start, end in intervals[1:]:
        if start > current_end:
            total += (current_end - current_start).total_seconds()
            current_start, current_end = start, end
        else:
            current_end = max(current_end, end)
    return total + (current_end - current_start).total_seconds()
