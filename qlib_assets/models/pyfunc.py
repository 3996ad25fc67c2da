"""An MLflow pyfunc around a fitted Qlib model and its window's fitted infer processors.

Loading needs only ``mlflow.pyfunc.load_model(uri)`` on CPU; ``predict`` takes a pandas frame
with ``instrument``, ``date`` and the model's feature columns (raw, as stored in the lake) and
returns one score per row. The infer processors (e.g. RobustZScoreNorm with the train segment's
statistics, cross-sectional norms per date) run first, exactly as in training.

A bundle pickled in a process that trained on a GPU holds CUDA tensors; ``read_bundle`` maps
them onto the CPU (seed 000: a GPU-saved model must load on a CPU-only server).
"""

import io
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema
from qlib.data.dataset import DatasetH
from qlib.data.dataset.handler import DataHandlerLP
from qlib.data.dataset.loader import StaticDataLoader
from qlib.data.dataset.processor import Processor
from qlib.model.base import Model

BUNDLE = "bundle"


def write_bundle(
    path: Path, model: Model, processors: Sequence[Processor], columns: Sequence[str]
) -> None:
    with open(path, "wb") as handle:
        pickle.dump(
            {"model": model, "processors": list(processors), "columns": list(columns)}, handle
        )


class _CpuUnpickler(pickle.Unpickler):
    """Restores torch storages on the CPU: torch's own unpickling restores a storage on the
    device it was saved from, which fails where CUDA is absent."""

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch.storage" and name == "_load_from_bytes":
            return _storage_on_cpu
        return super().find_class(module, name)


def _storage_on_cpu(data: bytes) -> Any:
    import torch

    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=False)


def _model_on_cpu(model: Model) -> Model:
    """Qlib's PyTorch models keep the device they were built for in ``device``."""
    device = getattr(model, "device", None)
    if type(device).__module__ == "torch" and getattr(device, "type", "cpu") != "cpu":
        import torch

        model.device = torch.device("cpu")
    return model


def read_bundle(path: Path) -> dict[str, Any]:
    """The bundle ``write_bundle`` wrote, every tensor on the CPU."""
    with open(path, "rb") as handle:
        bundle = _CpuUnpickler(handle).load()
    bundle["model"] = _model_on_cpu(bundle["model"])
    return bundle


def signature(columns: Sequence[str]) -> ModelSignature:
    inputs = Schema(
        [ColSpec("string", "instrument"), ColSpec("datetime", "date")]
        + [ColSpec("float", c) for c in columns]
    )
    return ModelSignature(inputs=inputs, outputs=Schema([ColSpec("double", "score")]))


def predict_frame(
    model: Model, processors: Sequence[Processor], columns: Sequence[str], frame: pd.DataFrame
) -> pd.Series:
    """Scores of ``frame`` (``instrument``, ``date`` + features), in the frame's row order."""
    index = pd.MultiIndex.from_arrays(
        [pd.to_datetime(frame["date"]), frame["instrument"].astype(str)],
        names=["datetime", "instrument"],
    )
    data = pd.DataFrame(
        np.asarray(frame[list(columns)], dtype=np.float32),
        index=index,
        columns=pd.MultiIndex.from_tuples([("feature", c) for c in columns]),
    )
    order = data.index
    data = data.sort_index()
    for processor in processors:
        data = processor(data.copy())
    dates = data.index.get_level_values("datetime")
    dataset = DatasetH(
        DataHandlerLP(data_loader=StaticDataLoader(config=data)),
        segments={"test": (dates.min(), dates.max())},
    )
    scores = model.predict(dataset, segment="test")
    return scores.reindex(order).rename("score")


class QlibPyfuncModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context: Any) -> None:
        bundle = read_bundle(Path(context.artifacts[BUNDLE]))
        self.model: Model = bundle["model"]
        self.processors: list[Processor] = bundle["processors"]
        self.columns: list[str] = bundle["columns"]

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        scores = predict_frame(self.model, self.processors, self.columns, model_input)
        return pd.DataFrame({"score": scores.to_numpy(dtype=np.float64)})
