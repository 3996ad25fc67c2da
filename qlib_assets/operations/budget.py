"""The budget guard's decisions: this month's spend, which runs are non-critical, what to hold.

Holding is a run tag (``qlib_assets/budget=held``) that the instance's run queue admits zero
runs of (see the tag limits in dagster.yaml and deploy/postgres/dagster.yaml); releasing sets it
to ``released``. The daily loop is never tagged non-critical, so it goes on.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime

import polars as pl

from qlib_assets.operations.config import BudgetSettings, Prices
from qlib_assets.operations.cost import DAYS_PER_MONTH, GB, step_costs

BUDGET_TAG = "qlib_assets/budget"
HELD, RELEASED = "held", "released"


@dataclass(frozen=True)
class BudgetStatus:
    month: str
    spent: float
    budget: float | None
    threshold: float

    @property
    def exceeded(self) -> bool:
        return self.budget is not None and self.spent >= self.budget * self.threshold

    def describe(self) -> str:
        if self.budget is None:
            return f"{self.month}: spent {self.spent:.4f}, no budget set"
        share = self.spent / self.budget if self.budget else float("inf")
        return (
            f"{self.month}: spent {self.spent:.4f} of {self.budget:.4f} ({share:.0%}); "
            f"non-critical runs are held from {self.threshold:.0%}"
        )


def month_key(day: date | datetime) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def month_spend(usage: pl.DataFrame, stored_bytes: int, prices: Prices, today: date) -> float:
    """Compute cost of this month's steps plus storage for the month's days so far."""
    month = usage.filter(
        (pl.col("at").dt.year() == today.year) & (pl.col("at").dt.month() == today.month)
    )
    compute = float(step_costs(month, prices).get_column("cost").sum()) if month.height else 0.0
    storage = stored_bytes / GB * prices.storage_gb_month * today.day / DAYS_PER_MONTH
    return compute + storage


def budget_status(
    usage: pl.DataFrame, stored_bytes: int, prices: Prices, budget: BudgetSettings, today: date
) -> BudgetStatus:
    spent = month_spend(usage, stored_bytes, prices, today)
    return BudgetStatus(month_key(today), spent, budget.monthly, budget.threshold)


def is_non_critical(tags: Mapping[str, str], budget: BudgetSettings) -> bool:
    """Tuning, backfills and explanations (by tag), and any run a backfill launched."""
    if "dagster/backfill" in tags:
        return True
    for key, values in budget.non_critical_tags.items():
        if tags.get(key) in values.split("|"):
            return True
    return False


@dataclass(frozen=True)
class GuardPlan:
    hold: list[str]
    release: list[str]


def plan_guard(
    status: BudgetStatus,
    queued: Sequence[tuple[str, Mapping[str, str]]],
    budget: BudgetSettings,
) -> GuardPlan:
    """Which queued runs to hold (over the threshold) or release (budget reset or raised)."""
    if status.exceeded:
        hold = [
            run_id
            for run_id, tags in queued
            if is_non_critical(tags, budget) and tags.get(BUDGET_TAG) != HELD
        ]
        return GuardPlan(hold, [])
    release = [run_id for run_id, tags in queued if tags.get(BUDGET_TAG) == HELD]
    return GuardPlan([], release)
