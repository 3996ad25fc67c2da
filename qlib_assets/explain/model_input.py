"""What a served model actually sees: the features after its window's fitted infer processors.

The served score of a row is the model's raw output on this processed input (the pyfunc's
``predict``): the infer processors (RobustZScoreNorm with the train segment's statistics,
Fillna) run first, exactly as in training. Explanations are of that output, feature by feature
of the processed input, so a contribution of RSI14 is the contribution of RSI14's normalized,
clipped value.
"""

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class ServedModel:
    """A registered version loaded for explanation: the Qlib model and its infer processors."""

    uri: str
    model: Any = field(repr=False)
    processors: list[Any] = field(repr=False)
    columns: list[str]

    @property
    def kind(self) -> str:
        """``lightgbm``, ``xgboost`` or ``pytorch`` (Qlib's DNNModelPytorch)."""
        name = type(self.model).__name__
        kinds = {"LGBModel": "lightgbm", "XGBModel": "xgboost", "DNNModelPytorch": "pytorch"}
        if name not in kinds:
            raise ValueError(f"{self.uri}: no explainer for model class {name}")
        return kinds[name]


def load_served_model(uri: str, tracking_uri: str) -> ServedModel:
    """The Qlib model and processors inside a registered pyfunc version."""
    from qlib_assets.models.tracking import load_scorer

    python_model = load_scorer(uri, tracking_uri).unwrap_python_model()
    return ServedModel(
        uri, python_model.model, list(python_model.processors), list(python_model.columns)
    )


def processed_input(served: ServedModel, frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` (``instrument``, ``date`` + raw features) after the infer processors, indexed
    by (datetime, instrument) in the frame's row order, one plain column per feature."""
    columns = served.columns
    index = pd.MultiIndex.from_arrays(
        [pd.to_datetime(frame["date"]), frame["instrument"].astype(str)],
        names=["datetime", "instrument"],
    )
    data = pd.DataFrame(
        np.asarray(frame[columns], dtype=np.float32),
        index=index,
        columns=pd.MultiIndex.from_tuples([("feature", c) for c in columns]),
    )
    order = data.index
    data = data.sort_index()
    for processor in served.processors:
        data = processor(data.copy())
    features = data["feature"].reindex(order)
    return features[columns].astype(np.float32)


def raw_output(served: ServedModel, features: pd.DataFrame) -> np.ndarray:
    """The model's raw output on processed features: the served score."""
    kind = served.kind
    values = features.to_numpy(dtype=np.float32)
    if kind == "lightgbm":
        return np.asarray(served.model.model.predict(values), dtype=np.float64)
    if kind == "xgboost":
        import xgboost as xgb

        return np.asarray(
            served.model.model.predict(xgb.DMatrix(values, feature_names=list(features.columns))),
            dtype=np.float64,
        )
    import torch

    network = served.model.dnn_model
    network.eval()
    with torch.no_grad():
        return network(torch.from_numpy(values)).numpy().reshape(-1).astype(np.float64)
