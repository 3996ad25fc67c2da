"""Windows per instrument with ``.over("instrument")``: one expression at a time, on any frame
that holds a session panel's rows (see :func:`compile_expression`)."""

import polars as pl

from qlib_assets.features.expressions.compiler import Compiler
from qlib_assets.features.expressions.panel import INSTRUMENT


class OverCompiler(Compiler):
    ema_group = INSTRUMENT

    def win(self, expr: pl.Expr) -> pl.Expr:
        return expr.over(INSTRUMENT)

    def pos(self) -> pl.Expr:
        return pl.int_range(pl.len(), dtype=pl.Int64).over(INSTRUMENT)
