"""Spec files: the shipped ones load; a bad one names the file and the field."""

from pathlib import Path

import pytest
import yaml

from qlib_assets.models.specs import SPECS_DIR, SpecError, dump_spec, load_spec, load_specs


def test_shipped_specs_load_with_qlib_classes() -> None:
    specs = load_specs()
    assert set(specs) == {
        "lgbm_alpha158",
        "linear_alpha158",
        "xgb_alpha158_indicators",
        "mlp_alpha158",
    }
    assert specs["lgbm_alpha158"].model.class_name == "LGBModel"
    assert specs["xgb_alpha158_indicators"].rolling.step == "month"
    assert [s.asset for s in specs["xgb_alpha158_indicators"].features] == [
        "alpha158",
        "indicators",
    ]
    assert specs["mlp_alpha158"].model.module_path == "qlib.contrib.model.pytorch_nn"


def _write(tmp_path: Path, change: dict[str, object], section: str | None = None) -> Path:
    data = yaml.safe_load((SPECS_DIR / "lgbm_alpha158.yaml").read_text())
    (data if section is None else data[section]).update(change)
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    ("section", "change", "message"),
    [
        ("rolling", {"trunc_days": 2}, r"broken\.yaml: rolling\.trunc_days=2 .*must be >= 3"),
        ("rolling", {"type": "growing"}, r"broken\.yaml: rolling\.type: Input should be"),
        ("rolling", {"step": 0}, r"broken\.yaml: rolling\.step"),
        ("model", {"class": "LGBMModel"}, r"broken\.yaml: model: .*has no class 'LGBMModel'"),
        (None, {"procesors": {}}, r"broken\.yaml: procesors: Extra inputs are not permitted"),
        (
            "processors",
            {"infer": [{"class": "RobustZScoreNorm", "kwargs": {"fit_start_time": "2020"}}]},
            r"broken\.yaml: processors\.infer\.0: .*set per window",
        ),
        ("processors", {"learn": [{"class": "NoSuchNorm"}]}, r"processors\.learn\.0: .*NoSuchNorm"),
    ],
)
def test_bad_specs_name_file_and_field(
    tmp_path: Path, section: str | None, change: dict[str, object], message: str
) -> None:
    with pytest.raises(SpecError, match=message):
        load_spec(_write(tmp_path, change, section))


def test_dump_and_reload_round_trips(tmp_path: Path) -> None:
    spec = load_specs()["mlp_alpha158"]
    path = tmp_path / "copy.yaml"
    path.write_text(dump_spec(spec))
    assert load_spec(path) == spec
    assert load_spec(path).digest() == spec.digest()
