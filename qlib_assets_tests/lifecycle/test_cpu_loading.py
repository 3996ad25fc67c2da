"""A model bundle pickled by a GPU process loads on this CPU-only machine with the right mapping.

The GPU side is reproduced with torch's own machinery: while pickling, ``location_tag`` names
every storage ``cuda:0`` (what a GPU process writes), and the Qlib model's ``device`` is CUDA.
"""

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from qlib.contrib.model.pytorch_nn import DNNModelPytorch

from qlib_assets.models.pyfunc import predict_frame, read_bundle, write_bundle

COLUMNS = ("a", "b", "c")


def _frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    days = pd.to_datetime(["2024-01-02", "2024-01-03"])
    return pd.DataFrame(
        {
            "instrument": [f"SH60000{i}" for i in range(4)] * 2,
            "date": np.repeat(days, 4),
            **{c: rng.normal(size=8).astype(np.float32) for c in COLUMNS},
        }
    )


def test_a_bundle_saved_on_a_gpu_loads_on_the_cpu_and_scores_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch.manual_seed(0)
    model = DNNModelPytorch(
        pt_model_kwargs={"input_dim": len(COLUMNS), "layers": [4]}, GPU=-1, scheduler=None
    )
    model.fitted = True
    expected = predict_frame(model, [], COLUMNS, _frame())

    model.device = torch.device("cuda:0")
    path = tmp_path / "bundle.pkl"
    with monkeypatch.context() as patch:
        patch.setattr(torch.serialization, "location_tag", lambda storage: "cuda:0")
        write_bundle(path, model, [], COLUMNS)

    with open(path, "rb") as handle, pytest.raises(RuntimeError, match="CUDA"):
        pickle.load(handle)  # what a plain load does on a machine without CUDA

    bundle = read_bundle(path)
    loaded = bundle["model"]
    assert loaded.device == torch.device("cpu")
    assert all(p.device.type == "cpu" for p in loaded.dnn_model.parameters())
    scores = predict_frame(loaded, bundle["processors"], bundle["columns"], _frame())
    np.testing.assert_allclose(scores.to_numpy(), expected.to_numpy(), rtol=0, atol=1e-6)
