"""Pictures of contributions, sized to read in Dagster's metadata view: SHAP's beeswarm and the
mean |SHAP| per factor family."""

from pathlib import Path

import numpy as np
import polars as pl

from qlib_assets.explain.contributions import Contributions
from qlib_assets.storage.atomic import write_with

MAX_DISPLAY = 20


def beeswarm(contributions: Contributions, target: Path, title: str) -> Path:
    """SHAP's beeswarm of the session: each dot an instrument, colour its processed input."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import shap

    explanation = shap.Explanation(
        values=contributions.values,
        base_values=np.full(len(contributions.values), contributions.base_value),
        data=contributions.inputs,
        feature_names=contributions.features,
    )
    shap.plots.beeswarm(explanation, max_display=MAX_DISPLAY, show=False)
    figure = plt.gcf()
    figure.set_size_inches(9, 7)
    figure.suptitle(title)
    figure.tight_layout()
    write_with(target, lambda tmp: figure.savefig(tmp, format="png", dpi=90))
    plt.close(figure)
    return target


def family_bars(families: pl.DataFrame, target: Path, title: str) -> Path:
    """Horizontal bars of mean |SHAP| per family, largest on top."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = families.head(MAX_DISPLAY).reverse()
    figure, axis = plt.subplots(figsize=(8, 0.3 * shown.height + 1.5))
    axis.barh(shown.get_column("family").to_list(), shown.get_column("mean_abs").to_numpy())
    axis.set_xlabel("mean |SHAP| (score units)")
    axis.set_title(title)
    figure.tight_layout()
    write_with(target, lambda tmp: figure.savefig(tmp, format="png", dpi=90))
    plt.close(figure)
    return target
