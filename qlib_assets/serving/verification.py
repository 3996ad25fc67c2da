"""A loaded model is verified in its idle slot before it may serve (seed 004 8.4: the Qlib
environment at deployment equals the one the model was trained with).

Checks: the registry's compatibility report (feature schema equal to the serving set, Qlib
version equal, the model library's major.minor equal) and a fixed sample scored twice with
identical, finite results.
"""

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from qlib_assets.models.registry import ModelRegistry
from qlib_assets.serving.slots import LoadedModel

SAMPLE_ROWS = 64


class VerificationFailed(RuntimeError):
    def __init__(self, model: LoadedModel, problems: Sequence[str], evidence: dict[str, Any]):
        super().__init__(f"{model.spec} v{model.version} refused: {'; '.join(problems)}")
        self.problems = list(problems)
        self.evidence = evidence


def verify_model(
    model: LoadedModel,
    registry: ModelRegistry,
    serving_features: Sequence[str],
    sample: pd.DataFrame | None,
) -> dict[str, Any]:
    """Evidence of a passed verification; raises ``VerificationFailed`` with every problem."""
    report = registry.check_compatibility(model.spec, model.version, serving_features)
    problems = list(report.problems)
    evidence: dict[str, Any] = {"compatibility": report.evidence()}
    if sample is None or sample.empty:
        problems.append("no fixed sample: the spec's features have no materialized session")
    else:
        rows = sample.head(SAMPLE_ROWS)
        try:
            first, second = model.score(rows), model.score(rows)
        except Exception as exc:
            problems.append(f"scoring the fixed sample raised {type(exc).__name__}: {exc}")
        else:
            evidence["sample_rows"] = len(rows)
            evidence["sample_digest"] = float(np.round(np.nansum(first), 10))
            if not np.isfinite(first).all():
                problems.append(f"{int((~np.isfinite(first)).sum())} non-finite sample score(s)")
            if not np.array_equal(first, second):
                problems.append("the fixed sample scored twice gave different scores")
    if problems:
        raise VerificationFailed(model, problems, evidence)
    return evidence
