"""The entry points: one expression as a polars expression, or many named expressions over a
session panel in one pass."""

from collections.abc import Mapping, Sequence
from datetime import date

import numpy as np
import polars as pl

from qlib_assets.features.expressions.compiler import finish
from qlib_assets.features.expressions.over import OverCompiler
from qlib_assets.features.expressions.padded import PaddedCompiler, run_padded
from qlib_assets.features.expressions.panel import INSTRUMENT
from qlib_assets.features.expressions.parser import Const, ExpressionError, Node, parse
from qlib_assets.features.expressions.planning import plan
from qlib_assets.features.expressions.targets import TargetsCompiler, run_at_targets


def _check_fields_used(node: Node, text: str) -> None:
    if isinstance(node, Const):
        raise ExpressionError("the expression must use at least one $field", text, node.pos)


def validate_expression(expr: str, *, allow_future: bool = False) -> None:
    """Raise :class:`ExpressionError` if ``expr`` cannot be compiled."""
    compile_expression(expr, allow_future=allow_future)


def compile_expression(expr: str, *, allow_future: bool = False) -> pl.Expr:
    """One Qlib expression as a polars expression over a session panel.

    The frame it runs on must come from :func:`to_session_panel` (sorted by instrument then
    date, every session of an instrument's life present); windows run ``.over("instrument")``.
    The result is float32 with NaN for missing values, as Qlib's ``D.features`` returns it.
    """
    compiler = OverCompiler(allow_future)
    compiler.text = expr
    node = parse(expr)
    _check_fields_used(node, expr)
    return finish(compiler.compile(node)).alias(expr)


def compute_expressions(
    panel: pl.DataFrame,
    expressions: Mapping[str, str],
    *,
    allow_future: bool = False,
    targets: Sequence[date] | None = None,
) -> pl.DataFrame:
    """Evaluate named Qlib expressions over a session panel in one polars pass.

    Subexpressions shared between expressions (``$close``, ``Ref($close, 1)``,
    ``Mean($close, 20)`` ...) are computed once. Returns ``instrument, date`` plus one float32
    column per name (NaN when missing), rows in the panel's order.

    ``targets``: only the rows of these sessions are returned, and windows are computed at those
    rows only (the same values as the rows of a run without ``targets``). Meant for a few
    sessions at the end of a lookback window: the cost grows with the number of target rows.
    """
    trees: dict[str, Node] = {}
    for name, text in expressions.items():
        try:
            trees[name] = parse(text)
        except ExpressionError as exc:
            raise ExpressionError(f"{name}: {exc.reason}", text, exc.position) from None
        _check_fields_used(trees[name], text)
    compiler: PaddedCompiler | TargetsCompiler
    if targets is None:
        codes = panel.get_column(INSTRUMENT).rle_id().to_numpy()
        compiler = PaddedCompiler(allow_future, plan(list(trees.values()), np.bincount(codes)))
    else:
        compiler = TargetsCompiler(allow_future)
    outputs: list[pl.Expr] = []
    for name, tree in trees.items():
        compiler.text = expressions[name]
        try:
            out = compiler.compile(tree)
        except ExpressionError as exc:
            raise ExpressionError(f"{name}: {exc.reason}", exc.text, exc.position) from None
        outputs.append(finish(out).alias(name))
    if isinstance(compiler, TargetsCompiler):
        return run_at_targets(panel, compiler, outputs, targets or ())
    return run_padded(panel, compiler, outputs)
