"""User formulas from settings: Qlib expression strings, or restricted polars expressions.

``Settings.custom_factors`` and ``Settings.custom_indicators`` map a column name to a formula.
A formula is a Qlib expression (``Mean($close, 5) / $close``) unless it starts with
``polars:``, in which case the rest is a polars expression in a small, safe subset of Python:
``pl.col("close")``, ``pl.lit(1.0)``, numbers, arithmetic and comparisons, and calls of the
allowed methods below (``pl.col("close").rolling_mean(5).over("instrument")``). The string is
parsed with :mod:`ast` and rebuilt node by node; it is never evaluated, so no other name,
attribute or call can run. Formulas are validated when loaded; an error names the formula and
the unknown field, function or construct.
"""

import ast
from collections.abc import Mapping
from datetime import date
from typing import Any

import polars as pl

from qlib_assets.features.expressions import (
    FIELDS,
    INSTRUMENT,
    ExpressionError,
    compile_expression,
    compute_expressions,
    to_session_panel,
)

POLARS_PREFIX = "polars:"

ALLOWED_METHODS = frozenset(
    {
        "abs",
        "alias",
        "cast",
        "clip",
        "cum_sum",
        "diff",
        "ewm_mean",
        "exp",
        "fill_nan",
        "fill_null",
        "is_null",
        "log",
        "log1p",
        "over",
        "pct_change",
        "pow",
        "rank",
        "rolling_max",
        "rolling_mean",
        "rolling_median",
        "rolling_min",
        "rolling_quantile",
        "rolling_std",
        "rolling_sum",
        "rolling_var",
        "shift",
        "sign",
        "sqrt",
    }
)
ALLOWED_COLUMNS = frozenset({*FIELDS, INSTRUMENT, "date"})
_DTYPES = {"Float32": pl.Float32, "Float64": pl.Float64, "Int64": pl.Int64}
_BINARY = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
    ast.Pow: lambda a, b: a**b,
    ast.BitAnd: lambda a, b: a & b,
    ast.BitOr: lambda a, b: a | b,
}
_COMPARE = {
    ast.Gt: lambda a, b: a > b,
    ast.GtE: lambda a, b: a >= b,
    ast.Lt: lambda a, b: a < b,
    ast.LtE: lambda a, b: a <= b,
    ast.Eq: lambda a, b: a == b,
    ast.NotEq: lambda a, b: a != b,
}


class FormulaError(ValueError):
    """A custom formula that cannot be loaded; the message names the formula."""


def is_polars_formula(formula: str) -> bool:
    return formula.lstrip().startswith(POLARS_PREFIX)


def load_custom_formulas(mapping: Mapping[str, str]) -> dict[str, pl.Expr]:
    """Compile every named formula, failing on the first invalid one with its name.

    Qlib formulas compile to expressions over a session panel (windows per instrument, see
    :func:`compile_expression`); polars formulas are taken as written.
    """
    compiled: dict[str, pl.Expr] = {}
    for name, formula in mapping.items():
        try:
            if is_polars_formula(formula):
                expr = parse_polars_formula(formula.lstrip()[len(POLARS_PREFIX) :])
            else:
                expr = compile_expression(formula)
        except (ExpressionError, FormulaError) as exc:
            raise FormulaError(f"custom formula {name!r}: {exc}") from None
        compiled[name] = expr.alias(name)
    return compiled


def compute_custom(
    bars: pl.DataFrame,
    formulas: Mapping[str, str],
    sessions: list[date] | None = None,
) -> pl.DataFrame:
    """``instrument, date`` plus one column per formula, over the session panel of ``bars``.

    Qlib formulas go through the batched compiler (shared subexpressions computed once);
    polars formulas run as written on the same panel.
    """
    load_custom_formulas(formulas)
    panel = to_session_panel(bars, sessions)
    qlib_formulas = {n: f for n, f in formulas.items() if not is_polars_formula(f)}
    polars_formulas = {n: f for n, f in formulas.items() if is_polars_formula(f)}
    result = compute_expressions(panel, qlib_formulas)
    if polars_formulas:
        exprs = load_custom_formulas(polars_formulas)
        result = pl.concat([result, panel.select(*exprs.values())], how="horizontal")
    return result.select(INSTRUMENT, "date", *formulas)


def parse_polars_formula(source: str) -> pl.Expr:
    """Rebuild a polars expression from the allowed subset of Python syntax."""
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as exc:
        raise FormulaError(f"syntax error at column {exc.offset}: {exc.msg}") from None
    built = _build(tree.body)
    if not isinstance(built, pl.Expr):
        raise FormulaError("the formula must be a polars expression, e.g. pl.col('close')")
    return built


def _build(node: ast.AST) -> Any:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float | str | bool):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_build(node.operand)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        return _BINARY[type(node.op)](_build(node.left), _build(node.right))
    if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _COMPARE:
        return _COMPARE[type(node.ops[0])](_build(node.left), _build(node.comparators[0]))
    if isinstance(node, ast.Attribute) and _is_pl(node.value) and node.attr in _DTYPES:
        return _DTYPES[node.attr]
    if isinstance(node, ast.Call):
        return _call(node)
    raise FormulaError(f"unsupported syntax {ast.unparse(node)!r} at column {node.col_offset}")


def _is_pl(node: ast.AST) -> bool:
    return isinstance(node, ast.Name) and node.id == "pl"


def _call(node: ast.Call) -> Any:
    func = node.func
    if not isinstance(func, ast.Attribute):
        raise FormulaError(f"unknown function {ast.unparse(func)!r} at column {func.col_offset}")
    if not _is_pl(func.value) and func.attr not in ALLOWED_METHODS:
        raise FormulaError(
            f"unknown function {func.attr!r} at column {func.col_offset} "
            f"(allowed: {', '.join(sorted(ALLOWED_METHODS))})"
        )
    args = [_build(a) for a in node.args]
    kwargs = {k.arg: _build(k.value) for k in node.keywords if k.arg is not None}
    if len(kwargs) != len(node.keywords):
        raise FormulaError(f"**kwargs are not allowed at column {node.col_offset}")
    if _is_pl(func.value):
        if func.attr == "col":
            if len(args) != 1 or kwargs or args[0] not in ALLOWED_COLUMNS:
                raise FormulaError(
                    f"unknown field {ast.unparse(node)!r} at column {node.col_offset} "
                    f"(known: {', '.join(sorted(ALLOWED_COLUMNS))})"
                )
            return pl.col(args[0])
        if func.attr == "lit" and len(args) == 1 and not kwargs:
            return pl.lit(args[0])
        raise FormulaError(f"unknown function 'pl.{func.attr}' at column {func.col_offset}")
    target = _build(func.value)
    if not isinstance(target, pl.Expr):
        raise FormulaError(f"{func.attr!r} at column {func.col_offset} needs an expression")
    try:
        return getattr(target, func.attr)(*args, **kwargs)
    except (TypeError, ValueError) as exc:
        raise FormulaError(f"bad arguments to {func.attr!r}: {exc}") from None
