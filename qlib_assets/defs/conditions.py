"""When each daily asset runs by itself (Declarative Automation), so the UI shows why it ran or
waits. The landing sensor requests the market data and features of a delivered session; the
rest follows from these conditions."""

from datetime import timedelta

import dagster as dg

from qlib_assets.features.builders import LABEL_HORIZON

# Lagged assets look back this far for sessions whose inputs completed (labels of session d
# complete two sessions later; a long weekend or holiday stretches that in calendar days).
LAG_WINDOW = timedelta(days=14)


def on_new_session(ignore: dg.AssetSelection | None = None) -> dg.AutomationCondition:
    """The latest session, once its inputs are updated and none is missing or in progress.

    ``ignore``: inputs read whole (the model windows) that neither trigger nor block it.
    """
    condition = dg.AutomationCondition.eager()
    return condition.ignore(ignore) if ignore is not None else condition


class FollowedBySessions(dg.AutomationCondition):
    """Sessions followed by at least ``count`` sessions that already exist as partitions.

    Partitions end at the current session, and a mapping that reads sessions after d allows
    them not to exist yet; without this, labels of the newest sessions would look complete.
    """

    def __init__(self, count: int) -> None:
        self.count = count

    @property
    def description(self) -> str:
        return f"followed by {self.count} existing sessions"

    def evaluate(self, context: dg.AutomationContext) -> dg.AutomationResult:
        partitions = context.partitions_def
        keys = [] if partitions is None else partitions.get_partition_keys(context.evaluation_time)
        eligible = set(keys[: max(0, len(keys) - self.count)])
        subset = context.candidate_subset.compute_intersection_with_partition_keys(eligible)
        return dg.AutomationResult(context=context, true_subset=subset)


def when_inputs_complete(later_sessions: int = 0) -> dg.AutomationCondition:
    """Any session of the last two weeks whose inputs were just completed: labels (which read
    ``later_sessions`` sessions after d) and what reads them run behind the newest session."""
    condition = when_updated_within(LAG_WINDOW)
    if later_sessions:
        condition = FollowedBySessions(later_sessions) & condition
    label = f"inputs complete (up to {LABEL_HORIZON} sessions behind)"
    # `&` gives a built-in condition, which takes a label.
    return condition.with_label(label)  # type: ignore[attr-defined]


def when_updated_within(window: timedelta) -> dg.AutomationCondition:
    return (
        dg.AutomationCondition.in_latest_time_window(window)
        & dg.AutomationCondition.any_deps_updated().since_last_handled()
        & ~dg.AutomationCondition.any_deps_missing()
        & ~dg.AutomationCondition.any_deps_in_progress()
        & ~dg.AutomationCondition.in_progress()
    )


def on_any_update() -> dg.AutomationCondition:
    """An unpartitioned summary over every session: after any of its inputs changes."""
    return (
        dg.AutomationCondition.any_deps_updated().since_last_handled()
        & ~dg.AutomationCondition.any_deps_in_progress()
        & ~dg.AutomationCondition.in_progress()
    ).with_label("after any input update")
