"""Compile errors name the problem and its position; the grammar follows Python's precedence."""

from datetime import date

import numpy as np
import polars as pl
import pytest

from qlib_assets.features.expressions import (
    ExpressionError,
    compile_expression,
    compute_expressions,
    lookback,
    to_session_panel,
)


@pytest.mark.parametrize(
    ("text", "message", "position"),
    [
        ("Mean($close, 5) + Foo($close)", "unknown operator 'Foo'", 18),
        ("Mean($close)", "Mean takes 2 arguments, got 1", 0),
        ("$close / Corr($close, $open)", "Corr takes 3 arguments, got 2", 9),
        ("$close + $turnover", "unknown field $turnover", 9),
        ("Mean($close, 5", "expected ')', found end of expression", 14),
        ("$close + * 2", "expected a value, found '*'", 9),
        ("$close ? 2", "unexpected character '?'", 7),
        ("$close $open", "unexpected '$open'", 7),
        ("Mean($close, 2.5)", "window must be an integer literal", 13),
        ("Mean($close, 0)", "expanding window", 13),
        ("Skew($close, 2)", "at least 3", 13),
        ("Ref($close, -1)", "allow_future=True", 12),
        ("Ref($close, 0)", "not supported", 12),
        ("Mask($close, 'SH000300')", "unexpected character", 13),
        ("Not($close)", "boolean operand", 0),
        ("$close > $open > $low", "chained comparisons", 15),
        ("close + 1", "'close' is not a field or a call", 0),
        ("1 + 2", "at least one $field", 2),
    ],
)
def test_errors_name_the_position(text: str, message: str, position: int) -> None:
    with pytest.raises(ExpressionError) as caught:
        compile_expression(text)
    assert message in str(caught.value)
    assert caught.value.position == position
    assert isinstance(caught.value, ValueError)


def test_batch_errors_name_the_expression() -> None:
    panel = pl.DataFrame({"instrument": ["A"], "date": [date(2024, 1, 2)], "close": [1.0]})
    with pytest.raises(ExpressionError, match="BAD: unknown operator"):
        compute_expressions(panel, {"OK": "$close", "BAD": "Nope($close)"})


def test_future_reference_allowed_for_labels() -> None:
    compile_expression("Ref($close, -2) / Ref($close, -1) - 1", allow_future=True)


def _evaluate(text: str) -> list[float]:
    days = [date(2024, 1, d) for d in (2, 3, 4)]
    bars = pl.DataFrame(
        {"instrument": "A", "date": days, "close": [2.0, 3.0, 4.0], "open": [1.0, 5.0, 4.0]}
    )
    frame = compute_expressions(to_session_panel(bars, days), {"x": text})
    return frame.get_column("x").to_list()


def test_python_precedence() -> None:
    # Python (hence Qlib): ** binds tighter than unary minus, * before +, & before comparison.
    assert _evaluate("-$close ** 2 + $open * 2") == [-2.0, 1.0, -8.0]
    assert _evaluate("$close - $open - 1") == [0.0, -3.0, -1.0]
    assert _evaluate("2 ** 3 ** 0 * $close") == [4.0, 6.0, 8.0]
    assert _evaluate("($close > $open) & ($open > 1) | ($close == $open)") == [0.0, 0.0, 1.0]
    assert _evaluate("($close > $open) | ($open > 1) & ($close == $open)") == [1.0, 0.0, 1.0]


def test_comparisons_with_missing_values_are_false_like_numpy() -> None:
    values = _evaluate("($close > Ref($close, 1)) + 10 * ($close != Ref($close, 1))")
    assert values == [10.0, 11.0, 11.0]
    assert np.isnan(_evaluate("Ref($close, 1)")[0])


def test_lookback_adds_nested_windows() -> None:
    assert lookback(["$close"]) == 1
    assert lookback(["Mean(Ref($close, 1), 60)", "Max($high, 5)"]) == 61
    assert lookback(["Std(Mean($close, 5), 10)"]) == 14
