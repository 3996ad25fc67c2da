"""A landing file is corrected after a model was trained: the model still reproduces from its
recorded inputs, and restores as of before and after the correction give the respective bytes
(and a Qlib provider that reads back as the restored lake)."""

import json
import time
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import pytest

from qlib_assets.cli import main
from qlib_assets.features.builders import build_alpha158, build_indicators, build_labels
from qlib_assets.market.raw_bars import build_raw_bars
from qlib_assets.market.synthetic import MarketSpec, generate_market, write_landing
from qlib_assets.models.platform import audit_log, platform_specs, spec_windows
from qlib_assets.models.registry import ModelRegistry
from qlib_assets.models.reproduce import Reproduction, reproduce_version
from qlib_assets.models.specs import dump_spec
from qlib_assets.models.tracking import TrackedWindow
from qlib_assets.models.window_training import train_spec_window
from qlib_assets.settings import LandingSettings, Settings
from qlib_assets.storage.lake import Lake
from qlib_assets.storage.restore import restore_to
from qlib_assets_tests.models.conftest import small_spec
from qlib_assets_tests.storage.test_qlib_bin import assert_reads

MARKET = MarketSpec(
    instruments=10, start=date(2024, 1, 2), end=date(2024, 5, 31), seed=5, effect_strength=0.15
)
ROLLING = {"step": 20, "type": "sliding", "train_sessions": 60, "valid_sessions": 20}


@dataclass(frozen=True)
class Corrected:
    settings: Settings
    tracked: TrackedWindow
    day: date
    before: datetime
    after: datetime
    old_bytes: bytes
    new_bytes: bytes


def _moment() -> datetime:
    time.sleep(0.002)
    moment = datetime.now(UTC)
    time.sleep(0.002)
    return moment


def _features(settings: Settings, days: list[date], indicators: bool) -> None:
    lake = Lake(settings.lake_dir)
    lake.write_days("alpha158", build_alpha158(settings, days), days)
    if indicators:
        lake.write_days("indicators", build_indicators(settings, days), days)
    lake.write_days("labels", build_labels(settings, days[:-2]), days[:-2])


def _home(tmp_path: Path, names: tuple[str, ...]) -> Settings:
    settings = Settings(
        home=tmp_path / "home",
        start_date=MARKET.start,
        specs_dir=tmp_path / "sp",
        landing=LandingSettings(settle_seconds=0),
    )
    settings.ensure_dirs()
    settings.specs_dir.mkdir()  # type: ignore[union-attr]
    for name in names:
        spec = small_spec(name, **ROLLING)
        (settings.specs_dir / f"{name}.yaml").write_text(dump_spec(spec))  # type: ignore[operator]
    return settings


def train_then_correct(tmp_path: Path, name: str) -> Corrected:
    settings = _home(tmp_path, (name,))
    # Qlib's MLP scores by daily IC and skips sessions of few instruments: it needs more.
    market = generate_market(replace(MARKET, instruments=80) if name.startswith("mlp") else MARKET)
    write_landing(market, settings.landing_dir)
    days = list(market.sessions)
    build_raw_bars(settings, days)
    _features(settings, days, name.startswith("xgb"))
    spec = platform_specs(settings)[name]
    window = spec_windows(settings, spec)[0]
    tracked = train_spec_window(settings, spec, window.key, {"dagster_run_id": "train-run"})
    before = _moment()

    # A vendor correction of one training session: one instrument's volume was wrong.
    day = days[40]
    assert window.train[0] < day < window.train[1]
    landing = settings.landing_dir / f"bars_{day.isoformat()}.parquet"
    bars = pl.read_parquet(landing)
    bars = bars.with_columns(
        pl.when(pl.int_range(pl.len()) == 0)
        .then(pl.col("volume") * 3)
        .otherwise(pl.col("volume"))
        .alias("volume")
    )
    bars.write_parquet(landing)
    raw = Lake(settings.lake_dir).path("raw_bars", day)
    old_bytes = raw.read_bytes()
    build_raw_bars(settings, [day])
    _features(settings, days, name.startswith("xgb"))
    new_bytes = raw.read_bytes()
    return Corrected(settings, tracked, day, before, _moment(), old_bytes, new_bytes)


def _reproduce(
    case: Corrected,
    version: str | None = None,
    keep_inputs: Path | None = None,
    rederive: bool = False,
) -> Reproduction:
    settings = case.settings
    return reproduce_version(
        ModelRegistry(settings.mlflow_uri, audit_log(settings)),
        Lake(settings.lake_dir),
        case.tracked.model_name,
        version or case.tracked.model_version,
        specs_dir=settings.specs_dir,
        keep_inputs=keep_inputs,
        rederive_with=settings if rederive else None,
    )


@pytest.fixture(scope="module")
def lgbm_case(tmp_path_factory: pytest.TempPathFactory) -> Corrected:
    return train_then_correct(tmp_path_factory.mktemp("lgbm"), "lgbm_alpha158")


def test_correction_changed_the_inputs(lgbm_case: Corrected) -> None:
    settings = lgbm_case.settings
    assert lgbm_case.old_bytes != lgbm_case.new_bytes
    lineage = ModelRegistry(settings.mlflow_uri, audit_log(settings)).lineage(
        lgbm_case.tracked.model_name, lgbm_case.tracked.model_version
    )
    recorded = lineage.raw_bars[lgbm_case.day.isoformat()]
    lake = Lake(settings.lake_dir)
    assert lake.versions.object_path(recorded["sha256"]).read_bytes() == lgbm_case.old_bytes
    assert recorded["run_id"] == "manual"
    current = {d.isoformat(): v.sha256 for d, v in lake.current_versions("alpha158").items()}
    changed = [d for d, sha in lineage.partitions["alpha158"].items() if current[d] != sha]
    assert changed, "the correction must reach the model's feature partitions"


def test_model_reproduces_after_the_correction(lgbm_case: Corrected, tmp_path: Path) -> None:
    result = _reproduce(lgbm_case, keep_inputs=tmp_path / "inputs", rederive=True)
    assert result.reproduced and result.max_abs_diff == 0.0
    assert result.rows > 0 and result.inputs["alpha158"] == result.inputs["labels"] > 60
    kept = Lake(tmp_path / "inputs" / "lake").path("raw_bars", lgbm_case.day).read_bytes()
    assert kept == lgbm_case.old_bytes
    # The recorded raw_bars versions give back the very features and labels trained on.
    assert result.rederived is not None
    for asset in ("alpha158", "labels"):
        again = result.rederived[asset]
        assert again.identical == again.partitions == result.inputs[asset]
        assert again.max_abs_diff == 0.0


def test_restores_before_and_after_give_their_bytes(lgbm_case: Corrected, tmp_path: Path) -> None:
    lake = Lake(lgbm_case.settings.lake_dir)
    for moment, expected, folder in (
        (lgbm_case.before, lgbm_case.old_bytes, tmp_path / "before"),
        (lgbm_case.after, lgbm_case.new_bytes, tmp_path / "after"),
    ):
        restore_to(lake, moment, folder, "XSHG")
        restored = Lake(folder / "lake")
        assert restored.path("raw_bars", lgbm_case.day).read_bytes() == expected
        days = restored.days("raw_bars")
        bars = restored.read_days("raw_bars", days)
        codes = {code: None for code in bars["instrument"].unique().to_list()}
        assert_reads(folder / "qlib_data", bars, codes)


def test_cli_reproduces_and_refuses_bad_input(
    lgbm_case: Corrected,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = lgbm_case.settings
    monkeypatch.setenv("QLIB_ASSETS_HOME", str(settings.root))
    monkeypatch.setenv("QLIB_ASSETS_SPECS_DIR", str(settings.specs_dir))
    name, version = lgbm_case.tracked.model_name, lgbm_case.tracked.model_version
    assert main(["models", "reproduce", name, version, "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["reproduced"] and payload["max_abs_diff"] == 0.0

    assert main(["models", "reproduce", name, "99"]) == 2
    assert "has no version '99'" in capsys.readouterr().err
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x").write_text("x")
    assert main(["models", "reproduce", name, version, "--keep-inputs", str(busy)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert [p.name for p in busy.iterdir()] == ["x"]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["xgb_alpha158_indicators", "mlp_alpha158"])
def test_other_model_families_reproduce(name: str, tmp_path: Path) -> None:
    case = train_then_correct(tmp_path, name)
    result = _reproduce(case)
    assert result.reproduced, result
    if name.startswith("xgb"):
        assert result.max_abs_diff == 0.0
