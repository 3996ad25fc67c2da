"""The code location and the CLI's parser load without the heavy libraries the assets use."""

import subprocess
import sys

import pytest

HEAVY = ("qlib", "mlflow", "evidently", "torch", "lightgbm", "xgboost", "sklearn", "matplotlib")


@pytest.mark.parametrize(
    "statement",
    [
        "import qlib_assets.definitions",
        "from qlib_assets.cli import build_parser; build_parser()",
    ],
)
def test_loading_imports_no_heavy_library(statement: str) -> None:
    loaded = f"sorted(m for m in {HEAVY!r} if m in sys.modules)"
    probe = f"{statement}; import sys; print(','.join({loaded}))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip().splitlines()[-1:] in ([], [""])


def test_alpha158_definitions_read_from_source_equal_qlibs() -> None:
    from qlib.contrib.data.loader import Alpha158DL

    from qlib_assets.features.alpha158 import _feature_config_from_source

    fields, names = Alpha158DL.get_feature_config()
    assert _feature_config_from_source() == (list(fields), list(names))
