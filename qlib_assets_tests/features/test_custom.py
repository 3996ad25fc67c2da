"""Custom formulas from settings: Qlib strings and a safe subset of polars expressions."""

from datetime import date

import numpy as np
import polars as pl
import pytest

from qlib_assets.features.custom import (
    FormulaError,
    compute_custom,
    load_custom_formulas,
    parse_polars_formula,
)
from qlib_assets.features.expressions import compute_expressions, to_session_panel
from qlib_assets.settings import Settings

DAYS = [date(2024, 1, d) for d in (2, 3, 4, 5, 8, 9)]


@pytest.fixture
def bars() -> pl.DataFrame:
    rows = {
        "instrument": ["A"] * 5 + ["B"] * 3,
        "date": [DAYS[0], DAYS[1], DAYS[2], DAYS[4], DAYS[5], DAYS[3], DAYS[4], DAYS[5]],
        "close": [10.0, 11.0, 12.0, 13.0, 12.5, 5.0, 5.5, 6.0],
        "volume": [100.0, 120.0, 90.0, 80.0, 110.0, 10.0, 12.0, 14.0],
    }
    return pl.DataFrame(rows)


def test_qlib_and_polars_formulas_compute_side_by_side(bars: pl.DataFrame) -> None:
    formulas = {
        "ma3": "Mean($close, 3) / $close",
        "ret": 'polars: (pl.col("close") / pl.col("close").shift(1).over("instrument") - 1)',
        "vol_z": 'polars: pl.col("volume").rolling_mean(2, min_samples=1).over("instrument")',
    }
    result = compute_custom(bars, formulas, DAYS)
    assert result.columns == ["instrument", "date", *formulas]
    reference = compute_expressions(to_session_panel(bars, DAYS), {"ma3": formulas["ma3"]})
    assert result.get_column("ma3").equals(reference.get_column("ma3"))
    a = result.filter(pl.col("instrument") == "A")
    # The suspended session (DAYS[3]) is a row of the panel with a missing close.
    assert a.get_column("ret")[1] == pytest.approx(0.1)
    assert a.get_column("ret")[3] is None
    assert a.get_column("vol_z")[4] == pytest.approx(80.0)
    assert np.isnan(a.get_column("ma3")[3])


def test_settings_formulas_load() -> None:
    settings = Settings(
        custom_factors={"mom": "Ref($close, 5) / $close - 1"},
        custom_indicators={"spread": 'polars: pl.col("high") - pl.col("low")'},
    )
    loaded = load_custom_formulas({**settings.custom_factors, **settings.custom_indicators})
    assert set(loaded) == {"mom", "spread"}


@pytest.mark.parametrize(
    ("formula", "message"),
    [
        ("Mean($close, 5) + Foo($close)", "unknown operator 'Foo'"),
        ("$close / $turnover", "unknown field $turnover"),
        ('polars: pl.col("turnover") * 2', "unknown field \"pl.col('turnover')\""),
        ('polars: pl.col("close").map_elements(print)', "unknown function 'map_elements'"),
        ("polars: __import__('os')", "unknown function '__import__'"),
        ("polars: __import__('os').system('true')", "unknown function 'system'"),
        ('polars: pl.read_csv("x")', "unknown function 'pl.read_csv'"),
        ('polars: pl.col("close").__class__', "unsupported syntax"),
        ("polars: [1, 2]", "unsupported syntax"),
        ('polars: pl.col("close" +', "syntax error"),
        ("polars: 1 + 2", "must be a polars expression"),
    ],
)
def test_invalid_formulas_name_the_formula_and_the_problem(formula: str, message: str) -> None:
    with pytest.raises(FormulaError) as caught:
        load_custom_formulas({"my_factor": formula})
    assert "custom formula 'my_factor'" in str(caught.value)
    assert message in str(caught.value)


def test_polars_formula_is_rebuilt_not_evaluated() -> None:
    expr = parse_polars_formula('pl.col("close").cast(pl.Float32).rolling_max(3) >= 2')
    frame = pl.DataFrame({"close": [1.0, 3.0, 2.0]})
    assert frame.select(expr).to_series().to_list() == [None, None, True]
