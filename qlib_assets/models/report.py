"""The training report of one window: loss curves, daily valid IC, top feature importance."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: runs inside Dagster workers

import matplotlib.pyplot as plt

from qlib_assets.models.training import TrainingResult

TOP_FEATURES = 20


def render_report(result: TrainingResult, target: Path) -> Path:
    """Write a PNG to ``target`` and return it."""
    panels = 3 if result.feature_importance is not None else 2
    fig, axes = plt.subplots(1, panels, figsize=(6 * panels, 4.5))
    curves_ax, ic_ax = axes[0], axes[1]
    for name, values in result.curves.items():
        curves_ax.plot(range(1, len(values) + 1), values, label=name)
    if result.best_iteration:
        curves_ax.axvline(result.best_iteration, color="grey", linestyle=":", label="best")
    curves_ax.set_title(f"{result.curve_metric} per iteration")
    curves_ax.set_xlabel("iteration")
    curves_ax.legend()

    daily = result.valid_ic.daily
    ic_ax.bar(range(daily.height), daily.get_column("ic").to_list(), color="tab:blue")
    ic_ax.axhline(result.valid_ic.ic, color="tab:red", label=f"mean IC {result.valid_ic.ic:.4f}")
    ic_ax.set_title(f"valid daily IC (rank IC {result.valid_ic.rank_ic:.4f})")
    ic_ax.set_xlabel("valid session")
    ic_ax.legend()

    if result.feature_importance is not None:
        top = result.feature_importance.head(TOP_FEATURES)[::-1]
        axes[2].barh(list(top.index), top.to_numpy())
        axes[2].set_title(f"top {TOP_FEATURES} features (gain)")
    fig.suptitle(f"{result.spec.ref} window {result.window.key}")
    fig.tight_layout()
    target.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(target, dpi=90)
    plt.close(fig)
    return target
