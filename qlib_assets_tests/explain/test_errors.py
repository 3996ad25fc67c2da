"""Bad requests to explain get a clear error naming what is missing, through the CLI too."""

from datetime import date
from pathlib import Path

import polars as pl
import pytest

from qlib_assets.cli import main
from qlib_assets.explain.sessions import explain_instance, explain_session
from qlib_assets.settings import Settings
from qlib_assets.storage.lake import Lake

DAY = date(2024, 3, 4)


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    home = tmp_path / "home"
    monkeypatch.setenv("QLIB_ASSETS_HOME", str(home))
    found = Settings(home=home, start_date=date(2024, 1, 2))
    lake = Lake(found.lake_dir)
    keys = {"instrument": ["SH600000", "SH600001"], "date": [DAY, DAY]}
    lake.write_days("alpha158", pl.DataFrame({**keys, "KLEN": [0.1, 0.2]}), [DAY])
    lake.write_days("predictions_lgbm_alpha158", pl.DataFrame({**keys, "score": [0.1, 0.2]}), [DAY])
    return found


def test_unknown_spec(settings: Settings) -> None:
    with pytest.raises(ValueError, match=r"unknown spec 'nope': known specs are .*lgbm_alpha158"):
        explain_session(settings, "nope", DAY)


def test_date_without_predictions(settings: Settings) -> None:
    with pytest.raises(ValueError, match=r"lgbm_alpha158: no predictions for 2024-03-05; latest"):
        explain_session(settings, "lgbm_alpha158", date(2024, 3, 5))
    with pytest.raises(ValueError, match=r"mlp_alpha158: no predictions for .*none has any"):
        explain_session(settings, "mlp_alpha158", DAY)


def test_instrument_not_in_the_session(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ValueError, match=r"instrument 'SZ000001' is not in the session 2024-03-04"):
        explain_instance(settings, "lgbm_alpha158", DAY, "SZ000001")
    code = main(["explain", "lgbm_alpha158", "--date", "2024-03-04", "--instrument", "SZ000001"])
    assert code == 2
    assert "is not in the session" in capsys.readouterr().err
