"""Compile Qlib expression strings into polars expressions with Qlib 0.9.7's semantics.

The factor definitions stay Qlib's strings; the arithmetic runs in polars. Semantics follow
``qlib/data/ops.py`` and its Cython helpers, quirks included:

- **Windows count sessions.** Every window op looks at the last N rows of an instrument's
  *session panel* (:func:`to_session_panel`): all calendar sessions from its first to its last
  bar, suspended sessions present as missing rows, exactly as a Qlib ``.bin`` file stores them.
- **min_periods=1.** Windows shorter than N at an instrument's first sessions, and missing values
  inside a window, are skipped (pandas' rolling); an all-missing window gives NaN.
- **float32 like Qlib.** Fields are read as float32 (Qlib's ``.bin`` precision); element-wise
  arithmetic on float32 operands stays float32 as numpy does; window ops compute in float64 as
  pandas does; every result is cast to float32 at the end, as ``D.features`` does.
- **Comparisons** with a missing operand are False (``!=`` is True), as numpy compares NaN; so
  ``Mean($close>Ref($close,1), N)`` counts a session without a previous close as a 0.
- **Greater/Less** are ``np.maximum/np.minimum``: missing if either side is missing.
- **Std/Var** use ddof=1 (NaN for one value); **Skew** needs 3 values, **Kurt** 4 (pandas' bias
  corrected forms; a constant window gives 0 and -3).
- **IdxMax/IdxMin** are ``argmax+1`` counted from the oldest row of the (possibly truncated)
  window; a window holding a missing session returns the position of its first missing row
  (numpy's argmax on NaN), as Qlib does.
- **Rank** is pandas' ``rolling.rank(pct=True)``: average rank of the last value among the valid
  values of the window, divided by their count; NaN when the last value is missing.
- **Quantile/Med** are pandas' linear-interpolation quantiles of the valid values.
- **Mad** is the mean absolute deviation around the mean of the valid values.
- **Slope/Rsquare/Resi** regress the window's valid values on their session positions (Qlib's
  Cython ``rolling_slope`` etc.); Resi is the residual of the newest row (NaN when it is
  missing). Rsquare is NaN where the window's std is within 2e-5 of 0 (``np.isclose``).
- **Corr/Cov** are pandas' pairwise rolling forms over rows where both sides are present; Corr is
  NaN where either side's own rolling std is within 2e-5 of 0.
- **WMA** is Qlib's ``nanmean(w * x)`` with weights 1..L normalised to sum 1 over the window
  length L: the weighted sum is divided again by the number of valid values.
- **EMA** is ``ewm(span=N, adjust=True).mean()`` (``alpha=N`` when 0<N<1); a missing session
  keeps the previous value.
- **Delta** is ``x - Ref(x, N)``; **Ref** with a negative offset reads the future and is refused
  unless ``allow_future=True`` (labels).

Evaluation: every row of the panel by default, windows over a panel padded with empty rows
between instruments. Work shared between the expressions is done once: each window input is its
own column; window sums, Max/Min with IdxMax/IdxMin, and the sorted cells behind Quantile are
built for a long window by merging two shorter windows of the same input (a 60-row window from
two of 30, 30 from 20 and 10 ...), so all windows of one input cost about as much as the longest
alone, and a sum stays a direct sum of its window's rows; Rank over all windows of one input
comes from one lag walk (Mad as a numpy kernel, Std/Var/Skew/Kurt/Med as polars rolling ops);
Corr pairs its sides once for every window, and whole-number window sums (counts, positions) are
differences of running totals. With ``targets`` (a few output sessions, e.g. the one session of
a daily run), window inputs are computed over the whole panel and each window statistic only at
the target rows, from their gathered windows (:mod:`qlib_assets.features.expression_kernels`);
the values are the same.

Not supported (a clear :class:`ExpressionError`): expanding windows (N=0), ``Ref(x, 0)`` (Qlib
returns the first loaded value, which depends on the query start), float windows other than
EMA's alpha, and the cross-instrument operators ``Mask``/``ChangeInstrument`` plus
``TResample``, ``Rolling``, ``P``, ``PRef``. Unary minus is accepted (Qlib's ``Expression`` has
no ``__neg__``); chained comparisons are refused.
"""

from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date
from typing import Literal, TypeGuard

import numpy as np
import polars as pl

from qlib_assets.features.expression_kernels import (
    CONSTANT_STD,
    paired_variance_kernel,
    quantiles_kernel,
    ranks_kernel,
    window_kernel,
    window_split,
    window_statistic_at,
)
from qlib_assets.features.expression_parser import (
    FIELDS,
    Call,
    Const,
    ExpressionError,
    Field,
    Node,
    parse,
)
from qlib_assets.gc_pause import gc_paused

__all__ = [
    "FIELDS",
    "ExpressionError",
    "compile_expression",
    "compute_expressions",
    "lookback",
    "to_session_panel",
    "validate_expression",
]

Kind = Literal["bool", "f32", "f64"]
# A window's columns, and how two adjacent windows' columns make the longer window's:
# merge(older, newer, older's length, newer's length).
Parts = tuple[pl.Expr, ...]
Merge = Callable[[Parts, Parts, int, int], Parts]
Mode = Literal["over", "padded", "targets"]

INSTRUMENT = "instrument"
_REAL = "__real"
_POS = "__pos"
_GROUP = "__group"

_ELEMENT = {"Abs": 1, "Sign": 1, "Log": 1, "Not": 1, "Neg": 1}
_PAIR = ("Add", "Sub", "Mul", "Div", "Power", "Greater", "Less")
_COMPARE = ("Gt", "Ge", "Lt", "Le", "Eq", "Ne")
_LOGIC = ("And", "Or")
_ROLLING = (
    "Ref",
    "Mean",
    "Sum",
    "Std",
    "Var",
    "Skew",
    "Kurt",
    "Max",
    "Min",
    "IdxMax",
    "IdxMin",
    "Med",
    "Mad",
    "Rank",
    "Count",
    "Delta",
    "Slope",
    "Rsquare",
    "Resi",
    "WMA",
    "EMA",
)
_PAIR_ROLLING = ("Corr", "Cov")
_UNSUPPORTED = ("Mask", "ChangeInstrument", "TResample", "Rolling", "P", "PRef", "Feature")
_MIN_WINDOW = {"Skew": 3, "Kurt": 5}
_EXTREME = ("Max", "Min", "IdxMax", "IdxMin")
# The whole-number parts of the regression sums: presence, session position and its square.
_COUNTING = ("n", "t", "tt")
# Whole numbers add up exactly in float64 below this.
_EXACT_TOTAL = 2.0**53
_WINDOWED = frozenset((*_ROLLING, "Quantile", *_PAIR_ROLLING)) - {"Ref"}

OPERATORS: tuple[str, ...] = (
    *_ELEMENT,
    *_PAIR,
    *_COMPARE,
    *_LOGIC,
    "If",
    *_ROLLING,
    "Quantile",
    *_PAIR_ROLLING,
)


@dataclass(frozen=True)
class _Out:
    """A compiled node: its polars expression and what the compiler knows about its values."""

    expr: pl.Expr
    kind: Kind
    # Missing on every padding row (padded mode), so a window may read it without masking.
    clean: bool
    # Holds no NaN (missing values are nulls), so windows and comparisons need no fill_nan.
    nan_free: bool
    stage: int = 0


@dataclass(frozen=True)
class _Gather:
    """A target-frame column read from full-frame columns: Ref's shifted value (``op="Ref"``,
    ``n`` the offset) or a window statistic over the ``n`` rows ending at each target row."""

    name: str
    op: str
    inputs: tuple[str, ...]
    n: int
    quantile: float | None = None


class _Compiler:
    """Turns syntax trees into polars expressions: per-instrument ``over`` windows; plain
    windows over a panel padded with empty rows between instruments (fast path for every row);
    or, in ``targets`` mode, expressions over a frame of the output rows only, whose windows are
    numpy statistics of gathered rows and whose window inputs are ``over`` expressions over the
    whole panel (fast path for a few output sessions)."""

    def __init__(self, mode: Mode, allow_future: bool) -> None:
        self.mode = mode
        self.full = _Compiler("over", allow_future) if mode == "targets" else None
        self.full_columns: dict[str, pl.Expr] = {}
        self.gathers: dict[str, _Gather] = {}
        self.allow_future = allow_future
        self.lookback = 1
        self.text = ""
        self.cache: dict[str, _Out] = {}
        self.shared: set[str] = set()
        self.stages: list[list[pl.Expr]] = []
        self.sum_cache: dict[tuple[str, int], tuple[dict[str, pl.Expr], int]] = {}
        self.part_cache: dict[str, tuple[dict[str, pl.Expr], int]] = {}
        self.totals: dict[str, tuple[pl.Expr, int]] = {}
        # Running totals over a padded panel run across instruments: exact only while the
        # largest (squared positions) stays below 2**53; set by compute_expressions.
        self.exact_totals = True
        # Materialised window inputs by node key, and the paired columns of Corr/Cov by
        # "left|right|part".
        self.inputs: dict[str, tuple[pl.Expr, int]] = {}
        self.pairs: dict[str, tuple[pl.Expr, int]] = {}
        # Quantile levels taken of each input, by window, known before compiling (padded mode).
        self.quantiles: dict[str, dict[int, tuple[float, ...]]] = {}
        self.quantile_structs: dict[str, tuple[pl.Expr, int]] = {}
        # Padded mode, by window length: each summed expression's window sums; each input's
        # (extreme, its first position, first missing position) by "input|max" (or min).
        self.window_sums: dict[str, dict[int, tuple[Parts, int]]] = {}
        self.extremes: dict[str, dict[int, tuple[Parts, int]]] = {}
        # By input key: the windows the expressions rank it over (padded mode).
        self.ranks: dict[str, tuple[int, ...]] = {}
        self.rank_structs: dict[str, tuple[pl.Expr, int]] = {}

    # -- structure ---------------------------------------------------------------------------

    def fail(self, message: str, node: Node) -> ExpressionError:
        return ExpressionError(message, self.text, node.pos)

    def compile(self, node: Node) -> _Out:
        key = node.key()
        if key in self.cache:
            return self.cache[key]
        out = self._compile(node)
        windowed = isinstance(node, Call) and node.op in _WINDOWED
        if self.mode == "padded" and (key in self.shared or windowed):
            # Own columns, stage by stage: polars runs a stage's columns in parallel, and a
            # window's result is computed once however many expressions read it.
            column, stage = self.column(out.expr, out.stage)
            out = replace(out, expr=column, stage=stage)
        if isinstance(node, Call):
            self.cache[key] = out
        return out

    def column(self, expr: pl.Expr, stage: int) -> tuple[pl.Expr, int]:
        """Materialise ``expr`` (reading columns up to ``stage``) as a column of stage+1."""
        if self.mode != "padded":
            return expr, stage
        name = f"__c{sum(len(s) for s in self.stages)}"
        while len(self.stages) <= stage:
            self.stages.append([])
        self.stages[stage].append(expr.alias(name))
        return pl.col(name), stage + 1

    def _compile(self, node: Node) -> _Out:
        if isinstance(node, Field):
            expr = pl.col(node.name)
            if self.mode != "padded":
                expr = expr.cast(pl.Float32).fill_nan(None)
            return _Out(expr, "f32", clean=True, nan_free=True)
        if isinstance(node, Const):
            return _Out(pl.lit(node.value, dtype=pl.Float64), "f64", clean=False, nan_free=True)
        op = node.op
        if op in _UNSUPPORTED:
            raise self.fail(f"operator {op} is not supported by the polars engine", node)
        if self.full is not None and op in (*_ROLLING, "Quantile", *_PAIR_ROLLING):
            return self.at_targets(node)
        if op in _ELEMENT:
            self.arity(node, 1)
            return self.element(op, self.compile(node.args[0]), node)
        if op in _PAIR or op in _COMPARE or op in _LOGIC:
            self.arity(node, 2)
            left, right = node.args
            return self.pair(op, left, right, node)
        if op == "If":
            self.arity(node, 3)
            return self.if_(node)
        if op in _ROLLING:
            self.arity(node, 2)
            return self.rolling(op, node)
        if op == "Quantile":
            self.arity(node, 3)
            n = self.window(node, node.args[1])
            q = node.args[2]
            if not isinstance(q, Const) or not 0 <= q.value <= 1:
                raise self.fail("Quantile's third argument must be a number in [0, 1]", q)
            return self.quantile(node.args[0], n, float(q.value))
        if op in _PAIR_ROLLING:
            self.arity(node, 3)
            return self.pair_rolling(op, node)
        known = ", ".join(OPERATORS)
        raise self.fail(f"unknown operator {op!r} (known: {known})", node)

    def arity(self, node: Call, expected: int) -> None:
        if len(node.args) != expected:
            raise self.fail(
                f"{node.op} takes {expected} argument{'s' * (expected != 1)}, got {len(node.args)}",
                node,
            )

    def quantile(self, feature: Node, n: int, q: float) -> _Out:
        """One field of a struct column holding every quantile the expressions take of the same
        input (QTLU and QTLD over all their windows): one kernel sorts every window's cells,
        the longer windows merged from the shorter ones."""
        levels = dict(self.quantiles.get(feature.key(), {}))
        levels[n] = tuple(sorted({*levels.get(n, ()), q}))
        key = f"{feature.key()}|{sorted(levels.items())}"
        if key not in self.quantile_structs:
            x, stage = self.window_column(feature)
            struct = pl.struct(x.alias("v"), self.pos().alias("p"))
            names = [f"q{w}_{i}" for w, qs in levels.items() for i in range(len(qs))]
            dtype = pl.Struct(dict.fromkeys(names, pl.Float64))
            expr = struct.map_batches(quantiles_kernel(levels), return_dtype=dtype)
            self.quantile_structs[key] = self.column(expr, stage)
        column, stage = self.quantile_structs[key]
        return self.out64(column.struct.field(f"q{n}_{levels[n].index(q)}"), stage)

    def out64(self, expr: pl.Expr, stage: int, nan_free: bool = True) -> _Out:
        return _Out(expr, "f64", clean=False, nan_free=nan_free, stage=stage)

    # -- targets mode ------------------------------------------------------------------------

    def at_targets(self, node: Call) -> _Out:
        """A window or Ref read at the target rows, from inputs computed over the whole panel."""
        full = self.full
        assert full is not None
        full.text = self.text
        # Compiling the whole node in full context checks it (arity, window, allow_future) with
        # the same messages as the other modes; only EMA, with its unbounded memory, uses it.
        whole = full.compile(node)
        op, args = node.op, node.args
        if op == "EMA":
            return self.out64(self.gather("Ref", (self.full_input(node, whole.expr),), 0), 0)
        if op in ("Ref", "Delta"):
            n = int(args[1].value) if isinstance(args[1], Const) else 0
            x_full = full.compile(args[0])
            shifted = self.gather("Ref", (self.full_input(args[0], x_full.expr),), n)
            if op == "Ref":
                return _Out(shifted, x_full.kind, False, x_full.nan_free)
            x = self.compile(args[0])
            kind: Kind = "f64" if x.kind == "f64" else "f32"
            current = self.numeric(x, kind)
            before = shifted.cast(_DTYPE[kind])
            return _Out(current - before, kind, False, x.nan_free and x_full.nan_free)
        window_args = args[:1] if op not in _PAIR_ROLLING else args[:2]
        inputs = tuple(
            self.full_input(a, full.window_input(full.compile(a)), window=True) for a in window_args
        )
        n_node = args[1] if op == "Quantile" else args[-1]
        n = int(n_node.value) if isinstance(n_node, Const) else 0
        q = args[2] if op == "Quantile" else None
        quantile = float(q.value) if isinstance(q, Const) else None
        return self.out64(self.gather(op, inputs, n, quantile), 0)

    def full_input(self, node: Node, expr: pl.Expr, window: bool = False) -> str:
        """The full-frame column holding ``expr`` (node's value, as a window reads it if
        ``window``), added once however many target columns read it."""
        key = f"{node.key()}|{'window' if window else 'value'}"
        if key not in self.full_columns:
            self.full_columns[key] = expr.alias(f"__f{len(self.full_columns)}")
        return self.full_columns[key].meta.output_name()

    def gather(self, op: str, inputs: tuple[str, ...], n: int, q: float | None = None) -> pl.Expr:
        key = f"{op}({','.join(inputs)},{n},{q})"
        if key not in self.gathers:
            self.gathers[key] = _Gather(f"__t{len(self.gathers)}", op, inputs, n, q)
        return pl.col(self.gathers[key].name)

    # -- helpers -----------------------------------------------------------------------------

    def win(self, expr: pl.Expr) -> pl.Expr:
        return expr.over(INSTRUMENT) if self.mode == "over" else expr

    def mask(self, expr: pl.Expr) -> pl.Expr:
        return pl.when(pl.col(_REAL)).then(expr) if self.mode == "padded" else expr

    def pos(self) -> pl.Expr:
        if self.mode == "over":
            return pl.int_range(pl.len(), dtype=pl.Int64).over(INSTRUMENT)
        return pl.col(_POS)

    @staticmethod
    def numeric(out: _Out, kind: Kind) -> pl.Expr:
        expr = out.expr
        if out.kind != kind:
            expr = expr.cast(pl.Float32 if kind == "f32" else pl.Float64)
        return expr if out.nan_free else expr.fill_nan(None)

    def window_input(self, out: _Out) -> pl.Expr:
        """Float64, NaN as missing, and missing on padding rows: what a window may read."""
        expr = self.numeric(out, "f64")
        return expr if out.clean else self.mask(expr)

    def window_column(self, node: Node) -> tuple[pl.Expr, int]:
        """``node``'s window input and its stage; in padded mode materialised once as its own
        column when it is more than a column read (a cast, NaN cleaning, the padding mask):
        polars would otherwise redo that work inside every window op that reads it."""
        out = self.compile(node)
        expr = self.window_input(out)
        if self.mode != "padded" or expr.meta.is_column():
            return expr, out.stage
        key = node.key()
        if key not in self.inputs:
            self.inputs[key] = self.column(expr, out.stage)
        return self.inputs[key]

    def window(self, call: Call, arg: Node) -> int:
        if not isinstance(arg, Const) or not isinstance(arg.value, int):
            raise self.fail(f"{call.op}'s window must be an integer literal", arg)
        if arg.value == 0:
            raise self.fail(f"{call.op} with N=0 (expanding window) is not supported", arg)
        if arg.value < 0:
            raise self.fail(f"{call.op}'s window must be positive", arg)
        least = _MIN_WINDOW.get(call.op, 1)
        if arg.value < least:
            raise self.fail(f"{call.op}'s window must be at least {least}", arg)
        self.lookback = max(self.lookback, arg.value)
        return arg.value

    # -- element-wise ------------------------------------------------------------------------

    def element(self, op: str, x: _Out, node: Call) -> _Out:
        if op == "Not":
            if x.kind != "bool":
                raise self.fail("Not needs a boolean operand (a comparison)", node)
            return replace(x, expr=self.mask(~x.expr), clean=True)
        kind: Kind = "f64" if x.kind == "f64" else "f32"
        expr = self.numeric(x, kind)
        if op == "Abs":
            return replace(x, expr=expr.abs(), kind=kind)
        if op == "Neg":
            return replace(x, expr=-expr, kind=kind)
        if op == "Sign":
            # Qlib casts to float32 before np.sign.
            return replace(x, expr=expr.cast(pl.Float32).sign(), kind="f32")
        # numpy's float32 log differs from polars' in the last bits; those bits matter when a
        # window of log-volumes is nearly flat (Corr), so the log is numpy's.
        logged = expr.map_batches(_numpy_log, return_dtype=_DTYPE[kind], is_elementwise=True)
        return replace(x, expr=logged, kind=kind, nan_free=False)

    def pair(self, op: str, left_node: Node, right_node: Node, node: Call) -> _Out:
        left, right = self.compile(left_node), self.compile(right_node)
        stage = max(left.stage, right.stage)
        if op in _LOGIC:
            if left.kind != "bool" or right.kind != "bool":
                raise self.fail(f"{op} needs boolean operands (comparisons)", node)
            expr = left.expr & right.expr if op == "And" else left.expr | right.expr
            return _Out(self.mask(expr), "bool", clean=True, nan_free=True, stage=stage)
        kind = _result_kind((left, left_node), (right, right_node))
        a = self.numeric(left, kind)
        b = self.numeric(right, kind)
        clean = (left.clean or isinstance(left_node, Const)) and (
            right.clean or isinstance(right_node, Const)
        )
        if op in _COMPARE:
            compared = {
                "Gt": a > b,
                "Ge": a >= b,
                "Lt": a < b,
                "Le": a <= b,
                "Eq": a == b,
                "Ne": a != b,
            }[op]
            expr = self.mask(compared.fill_null(op == "Ne"))
            return _Out(expr, "bool", clean=True, nan_free=True, stage=stage)
        nan_free = left.nan_free and right.nan_free
        if op == "Add":
            expr = a + b
        elif op == "Sub":
            expr = a - b
        elif op == "Mul":
            expr = a * b
        elif op == "Div":
            expr, nan_free = a / b, False
        elif op == "Power":
            expr, nan_free = a.pow(b), False
        else:
            either_missing = a.is_null() | b.is_null()
            extreme = pl.max_horizontal(a, b) if op == "Greater" else pl.min_horizontal(a, b)
            expr = pl.when(either_missing).then(None).otherwise(extreme)
        return _Out(expr, kind, clean=clean, nan_free=nan_free, stage=stage)

    def if_(self, node: Call) -> _Out:
        _, left_node, right_node = node.args
        cond, left, right = (self.compile(n) for n in node.args)
        if cond.kind == "bool":
            truth = cond.expr
        else:
            # np.where treats NaN (a missing value) as true.
            value = self.numeric(cond, "f64")
            truth = value.is_null() | (value != 0)
        kind = _result_kind((left, left_node), (right, right_node))
        expr = pl.when(truth).then(self.numeric(left, kind)).otherwise(self.numeric(right, kind))
        stage = max(cond.stage, left.stage, right.stage)
        nan_free = left.nan_free and right.nan_free
        return _Out(self.mask(expr), kind, clean=True, nan_free=nan_free, stage=stage)

    # -- windows -----------------------------------------------------------------------------

    def rolling(self, op: str, node: Call) -> _Out:
        feature, n_node = node.args
        if op == "Ref":
            return self.ref(node, feature, n_node)
        if op == "EMA" and isinstance(n_node, Const) and isinstance(n_node.value, float):
            if not 0 < n_node.value < 1:
                raise self.fail("EMA's float argument is alpha and must be in (0, 1)", n_node)
            return self.ema(feature, alpha=n_node.value)
        n = self.window(node, n_node)
        if op == "EMA":
            return self.ema(feature, span=n)
        x_out = self.compile(feature)
        stage = x_out.stage
        if op == "Delta":
            x = self.numeric(x_out, x_out.kind if x_out.kind != "bool" else "f32")
            kind: Kind = "f64" if x_out.kind == "f64" else "f32"
            return _Out(x - self.win(x.shift(n)), kind, False, x_out.nan_free, stage)
        x, stage = self.window_column(feature)
        if op in ("Mean", "Sum") and (x_out.kind == "bool" or self.mode == "padded"):
            return self.window_mean(op, x, n, stage, counting=x_out.kind == "bool")
        if op in _EXTREME and self.mode == "padded":
            return self.extreme(x, stage, _extreme_group(feature, op), op, n)
        if op == "Rank" and len(self.ranks.get(feature.key(), ())) > 1:
            return self.rank(x, stage, feature.key(), n)
        if op in ("IdxMax", "IdxMin", "Mad", "Rank"):
            kernel = window_kernel(op, n)
            struct = pl.struct(x.alias("v"), self.pos().alias("p"))
            expr = struct.map_batches(kernel, return_dtype=pl.Float64)
            return self.out64(expr, stage)
        simple: dict[str, Callable[[], pl.Expr]] = {
            "Mean": lambda: x.rolling_mean(n, min_samples=1),
            "Sum": lambda: x.rolling_sum(n, min_samples=1),
            "Std": lambda: x.rolling_std(n, min_samples=1),
            "Var": lambda: x.rolling_var(n, min_samples=1),
            "Max": lambda: x.rolling_max(n, min_samples=1),
            "Min": lambda: x.rolling_min(n, min_samples=1),
            "Med": lambda: x.rolling_median(n, min_samples=1),
        }
        if op in simple:
            return self.out64(self.win(simple[op]()), stage, nan_free=op not in ("Std", "Var"))
        if op == "Count":
            count, count_stage = self.counting_sum(_present(x), n, stage)
            return self.out64(count, count_stage)
        if op in ("Skew", "Kurt"):
            return self.out64(self.moment(op, x, n), stage, nan_free=False)
        sums, stage = self.sums(x, n, stage)
        if op == "WMA":
            return self.out64(self.wma(n, sums), stage)
        if op == "Rsquare":
            flat, flat_stage = self.flat(feature, n_node)
            return self.out64(self.rsquare(sums, flat), max(stage, flat_stage), nan_free=False)
        return self.out64(self.regression(op, x, sums), stage, nan_free=False)

    def ref(self, node: Call, feature: Node, n_node: Node) -> _Out:
        if not isinstance(n_node, Const) or not isinstance(n_node.value, int):
            raise self.fail("Ref's offset must be an integer literal", n_node)
        n = n_node.value
        if n == 0:
            raise self.fail("Ref(x, 0) (Qlib's 'first loaded value') is not supported", n_node)
        if n < 0 and not self.allow_future:
            raise self.fail(
                "Ref with a negative offset reads future sessions; pass allow_future=True "
                "(labels only)",
                n_node,
            )
        self.lookback = max(self.lookback, abs(n))
        x = self.compile(feature)
        return _Out(self.win(x.expr.shift(n)), x.kind, False, x.nan_free, x.stage)

    def ema(self, feature: Node, span: int | None = None, alpha: float | None = None) -> _Out:
        x_out = self.compile(feature)
        x = self.window_input(x_out)
        smoothed = x.ewm_mean(span=span, alpha=alpha, adjust=True, min_samples=1)
        # pandas' ewm carries the last mean over a missing session; polars leaves it empty.
        group = INSTRUMENT if self.mode == "over" else _GROUP
        return self.out64(smoothed.forward_fill().over(group), x_out.stage)

    def moment(self, op: str, x: pl.Expr, n: int) -> pl.Expr:
        if op == "Skew":
            value, flat = x.rolling_skew(n, bias=False, min_samples=3), 0.0
        else:
            value, flat = x.rolling_kurtosis(n, fisher=True, bias=False, min_samples=4), -3.0
        # pandas returns 0 (skew) and -3 (kurt) for a constant window, polars NaN.
        constant = x.rolling_max(n, min_samples=1) == x.rolling_min(n, min_samples=1)
        return self.win(pl.when(constant & value.is_nan()).then(flat).otherwise(value))

    def sums(self, x: pl.Expr, n: int, stage: int) -> tuple[dict[str, pl.Expr], int]:
        """Windowed sums over the valid rows of x against their session positions t, shared by
        Slope, Rsquare, Resi and WMA of the same input and window."""
        cache_key = (str(x), n)
        if cache_key in self.sum_cache:
            return self.sum_cache[cache_key]
        parts, stage = self.sum_parts(x, stage)
        sums: dict[str, pl.Expr] = {}
        summed = stage
        for name, part in parts.items():
            if name in _COUNTING:
                sums[name], part_stage = self.column(*self.counting_sum(part, n, stage))
            else:
                sums[name], part_stage = self.window_sum(part, n, stage)
            summed = max(summed, part_stage)
        self.sum_cache[cache_key] = (sums, summed)
        return sums, summed

    def counting_sum(self, part: pl.Expr, n: int, stage: int) -> tuple[pl.Expr, int]:
        """The window sum of a whole-number part (a presence flag, a session position, its
        square) as a difference of running totals, computed once for every window: exact
        while the totals stay below 2**53, and several times cheaper than a rolling sum.
        An all-missing window sums to 0 here, not null; every reader of these sums also reads
        a data sum that is null there."""
        if not self.exact_totals:
            return self.win(part.rolling_sum(n, min_samples=1)), stage
        key = str(part)
        if key not in self.totals:
            self.totals[key] = self.column(self.win(part.fill_null(0.0).cum_sum()), stage)
        total, total_stage = self.totals[key]
        return self.win(total - total.shift(n, fill_value=0.0)), total_stage

    def window_sum(self, x: pl.Expr, n: int, stage: int) -> tuple[pl.Expr, int]:
        """The sum of x's present values over each window of n rows (0, or null in ``over``
        mode, where none is present). In padded mode from shorter windows' sums
        (:meth:`merged`): all windows of one input take a few additions in all, and each is a
        direct sum of its own rows, so all-zero windows sum to exactly 0, with no drift from a
        running add-and-subtract."""
        if self.mode != "padded":
            return self.win(x.rolling_sum(n, min_samples=1)), stage
        key = str(x)
        if key not in self.window_sums:
            self.window_sums[key] = {1: ((self.column(x.fill_null(0.0), stage)[0],), stage + 1)}

        def add(older: Parts, newer: Parts, _: int, k: int) -> Parts:
            return (newer[0] + older[0].shift(k, fill_value=0.0),)

        (total,), total_stage = self.merged(self.window_sums[key], n, add)
        return total, total_stage

    def merged(
        self, built: dict[int, tuple[Parts, int]], n: int, merge: Merge
    ) -> tuple[Parts, int]:
        """Window n's columns from two shorter windows' (:func:`window_split`): the newer ``k``
        rows and the ``n - k`` rows before them, read ``k`` rows back, combined by
        ``merge(older, newer, n - k, k)``."""
        if n in built:
            return built[n]
        k = window_split(n, built)
        (newer, newer_stage), (older, older_stage) = (
            self.merged(built, k, merge),
            self.merged(built, n - k, merge),
        )
        stage = max(newer_stage, older_stage)
        columns = [self.column(e, stage) for e in merge(older, newer, n - k, k)]
        built[n] = tuple(c for c, _ in columns), stage + 1
        return built[n]

    def window_mean(self, op: str, x: pl.Expr, n: int, stage: int, counting: bool) -> _Out:
        """Mean or Sum of x's present values, missing where the window holds none. A
        comparison (0/1, missing on padding rows only) sums as :meth:`counting_sum` does."""
        summed = self.counting_sum if counting else self.window_sum
        total, total_stage = summed(x, n, stage)
        count, count_stage = self.counting_sum(_present(x), n, stage)
        value = total if op == "Sum" else total / count
        return self.out64(pl.when(count > 0).then(value), max(total_stage, count_stage))

    def extreme(self, x: pl.Expr, stage: int, group: str, op: str, n: int) -> _Out:
        """Max/Min and IdxMax/IdxMin in padded mode, from each window's extreme, the position
        where it first occurs and the position of its first missing session (Qlib's IdxMax of
        a window holding one), merged from shorter windows (:meth:`merged`): the older part
        wins a tie, as the first occurrence. Missing and padding rows rank lowest; the padding
        before an instrument's first row is not part of Qlib's window, whose positions count
        from that first row."""
        if group not in self.extremes:
            ranked = (x if group.endswith("max") else -x).fill_null(float("-inf"))
            gap = pl.when(x.is_null() & pl.col(_REAL)).then(pl.lit(0, dtype=pl.Int32))
            base = (
                self.column(ranked, stage)[0],
                pl.lit(0, dtype=pl.Int32),
                self.column(gap, stage)[0],
            )
            self.extremes[group] = {1: (base, stage + 1)}
        (best, first, gap), parts_stage = self.merged(self.extremes[group], n, _merge_extremes)
        count, count_stage = self.counting_sum(_present(x), n, stage)
        stage = max(parts_stage, count_stage)
        if op in ("Max", "Min"):
            return self.out64(pl.when(count > 0).then(best if op == "Max" else -best), stage)
        before = (n - 1) - self.pos().clip(0, n - 1)
        index = (pl.coalesce(gap, first) - before + 1).cast(pl.Float64)
        return self.out64(pl.when(count > 0).then(index), stage)

    def rank(self, x: pl.Expr, stage: int, key: str, n: int) -> _Out:
        """Rank over one of several windows of the same input: fields of one kernel's struct
        column, whose walk over the longest window serves the shorter ones."""
        windows = self.ranks[key]
        if key not in self.rank_structs:
            struct = pl.struct(x.alias("v"), self.pos().alias("p"))
            dtype = pl.Struct({f"r{i}": pl.Float64 for i in range(len(windows))})
            expr = struct.map_batches(ranks_kernel(windows), return_dtype=dtype)
            self.rank_structs[key] = self.column(expr, stage)
        column, struct_stage = self.rank_structs[key]
        return self.out64(column.struct.field(f"r{windows.index(n)}"), struct_stage)

    def sum_parts(self, x: pl.Expr, stage: int) -> tuple[dict[str, pl.Expr], int]:
        """What :meth:`sums` adds up, the same for every window: own columns in padded mode."""
        key = str(x)
        if key not in self.part_cache:
            t = pl.when(x.is_not_null()).then(self.pos().cast(pl.Float64))
            parts = {"n": _present(x), "t": t, "tt": t * t, "y": x, "ty": t * x, "yy": x * x}
            columns: dict[str, pl.Expr] = {}
            part_stage = stage
            for name, part in parts.items():
                if part.meta.is_column():
                    columns[name] = part
                else:
                    columns[name], part_stage = self.column(part, stage)
            self.part_cache[key] = (columns, part_stage)
        return self.part_cache[key]

    def regression(self, op: str, x: pl.Expr, s: dict[str, pl.Expr]) -> pl.Expr:
        slope = (s["n"] * s["ty"] - s["t"] * s["y"]) / (s["n"] * s["tt"] - s["t"] * s["t"])
        if op == "Slope":
            return slope
        t = self.pos().cast(pl.Float64)
        return (x - s["y"] / s["n"]) - slope * (t - s["t"] / s["n"])

    @staticmethod
    def rsquare(s: dict[str, pl.Expr], flat: pl.Expr) -> pl.Expr:
        covariance = s["n"] * s["ty"] - s["t"] * s["y"]
        spread_t = s["n"] * s["tt"] - s["t"] * s["t"]
        spread_y = s["n"] * s["yy"] - s["y"] * s["y"]
        rsquare = covariance * covariance / (spread_t * spread_y)
        return pl.when(flat).then(None).otherwise(rsquare)

    def flat(self, feature: Node, n_node: Node) -> tuple[pl.Expr, int]:
        """Qlib's constant-window test on ``Std(feature, n)``: the same node as a Std factor,
        so its column is computed once for STD, Rsquare and Corr of one input and window."""
        std, stage = self.own_std(feature, n_node)
        return std <= CONSTANT_STD, stage

    def wma(self, n: int, s: dict[str, pl.Expr]) -> pl.Expr:
        pos = self.pos().cast(pl.Float64)
        length = pl.min_horizontal(pl.lit(float(n)), pos + 1.0)
        weighted = s["ty"] - (pos - length) * s["y"]
        return weighted / (length * (length + 1.0) / 2.0) / s["n"]

    def paired(
        self, left: Node, right: Node, names: Sequence[str]
    ) -> tuple[dict[str, pl.Expr], int]:
        """Columns of the two sides of Corr/Cov as pandas pairs them (a row counts only when
        both are present): ``a``, ``b``, their product ``ab``, sum ``sum`` and the pair
        indicator ``both``, those of ``names``; own columns in padded mode, each made once for
        every window of the same pair."""
        a, stage_a = self.window_column(left)
        b, stage_b = self.window_column(right)
        pa = pl.when(b.is_not_null()).then(a)
        pb = pl.when(a.is_not_null()).then(b)
        stage = max(stage_a, stage_b)
        parts = {"a": pa, "b": pb, "ab": pa * pb, "sum": pa + pb, "both": _present(pa)}
        columns: dict[str, pl.Expr] = {}
        paired_stage = stage
        for name in names:
            key = f"{left.key()}|{right.key()}|{name}"
            if key not in self.pairs:
                self.pairs[key] = self.column(parts[name], stage)
            columns[name], paired_stage = self.pairs[key]
        return columns, paired_stage

    def pair_rolling(self, op: str, node: Call) -> _Out:
        left_node, right_node, n_node = node.args
        n = self.window(node, n_node)
        names = ("a", "b", "ab", "both") if op == "Cov" else ("a", "b", "sum")
        paired, stage = self.paired(left_node, right_node, names)
        pa, pb = paired["a"], paired["b"]

        if op == "Cov":
            count, count_stage = self.counting_sum(paired["both"], n, stage)
            means = {}
            for name in ("ab", "a", "b"):
                total, total_stage = self.window_sum(paired[name], n, stage)
                means[name] = total / count
                count_stage = max(count_stage, total_stage)
            cov = (means["ab"] - means["a"] * means["b"]) * (count / (count - 1.0))
            return self.out64(cov, max(stage, count_stage), nan_free=False)
        std_a, stage_a = self.own_std(left_node, n_node)
        std_b, stage_b = self.own_std(right_node, n_node)
        var_a = self.paired_variance(pa, left_node, std_a, n)
        var_b = self.paired_variance(pb, right_node, std_b, n)
        # The covariance from Var(a + b) = Var(a) + Var(b) + 2 Cov(a, b): one rolling variance
        # instead of three window sums, and no E[ab] - E[a]E[b] cancellation.
        var_sum = self.win(paired["sum"].rolling_var(n, min_samples=1))
        corr = (var_sum - var_a - var_b) / 2.0 / (var_a * var_b).sqrt()
        # Qlib tests each side's own std, over its rows whether or not the other is present.
        flat = (std_a <= CONSTANT_STD) | (std_b <= CONSTANT_STD)
        corr = pl.when(flat).then(None).otherwise(corr)
        return self.out64(corr, max(stage, stage_a, stage_b), nan_free=False)

    def own_std(self, feature: Node, n_node: Node) -> tuple[pl.Expr, int]:
        std = self.compile(Call("Std", (feature, n_node), feature.pos))
        return std.expr, std.stage

    def paired_variance(self, paired: pl.Expr, feature: Node, std: pl.Expr, n: int) -> pl.Expr:
        """The rolling variance of one paired side. In padded mode a kernel checks the column
        first: where the other side is never missing alone, the paired side is the side itself,
        whose variance is the square of its Std column (computed anyway for the constant-window
        test), saving a rolling variance per window."""
        if self.mode != "padded":
            return self.win(paired.rolling_var(n, min_samples=1))
        own, _ = self.window_column(feature)
        struct = pl.struct(paired.alias("paired"), own.alias("own"), std.alias("std"))
        return struct.map_batches(paired_variance_kernel(n), return_dtype=pl.Float64)


_DTYPE: dict[Kind, pl.DataType] = {"f32": pl.Float32(), "f64": pl.Float64(), "bool": pl.Boolean()}


def _merge_extremes(older: Parts, newer: Parts, older_rows: int, newer_rows: int) -> Parts:
    """(extreme, first position of it, first missing position) of a window from its older and
    newer parts; positions count from the window's oldest row. A one-row window's position
    is the literal 0, which a shift would turn into a null."""
    old_best, old_first, old_gap = (e.shift(newer_rows) for e in older)
    if older_rows == 1:
        old_first = older[1]
    new_best, new_first, new_gap = newer
    old_wins = old_best.fill_null(float("-inf")) >= new_best
    best = pl.max_horizontal(old_best, new_best)
    first = pl.when(old_wins).then(old_first).otherwise(new_first + older_rows)
    return best, first, pl.coalesce(old_gap, new_gap + older_rows)


def _numpy_log(series: pl.Series) -> pl.Series:
    with np.errstate(divide="ignore", invalid="ignore"):
        values = np.log(series.fill_null(np.nan).to_numpy())
    return pl.Series(series.name, values, nan_to_null=True)


def _present(x: pl.Expr) -> pl.Expr:
    return x.is_not_null().cast(pl.Float64)


def _result_kind(*operands: tuple[_Out, Node]) -> Kind:
    """numpy's promotion: float32 stays float32 against float32, booleans or Python numbers."""
    kinds = {out.kind for out, node in operands if not isinstance(node, Const)}
    return "f64" if "f64" in kinds or not kinds else "f32"


def _finish(out: _Out) -> pl.Expr:
    """Qlib's ``D.features`` casts every result to float32; missing values are NaN."""
    expr = out.expr.cast(pl.Float32)
    return expr.fill_null(float("nan"))


def _check_fields_used(node: Node, text: str) -> None:
    if isinstance(node, Const):
        raise ExpressionError("the expression must use at least one $field", text, node.pos)


def validate_expression(expr: str, *, allow_future: bool = False) -> None:
    """Raise :class:`ExpressionError` if ``expr`` cannot be compiled."""
    compile_expression(expr, allow_future=allow_future)


def lookback(expressions: Sequence[str]) -> int:
    """Sessions one output row depends on, itself included: a run over that many recent
    sessions reproduces the last session of a full-history run.

    Nested windows add up along each path, as Qlib's ``get_extended_window_size`` does:
    ``Mean(Ref($close, 1), 60)`` needs 61 sessions.
    """
    return 1 + max((_extent(parse(text)) for text in expressions), default=0)


def _extent(node: Node) -> int:
    if not isinstance(node, Call):
        return 0
    inner = max((_extent(a) for a in node.args), default=0)
    windowed = node.op in (*_ROLLING, "Quantile", *_PAIR_ROLLING)
    if windowed and isinstance(node.args[-1 if node.op != "Quantile" else 1], Const):
        n = node.args[-1 if node.op != "Quantile" else 1].value
        if node.op == "Ref":
            return inner + max(int(n), 0)
        if isinstance(n, int):
            return inner + max(n - 1, 0) + (node.op == "Delta")
    return inner


def compile_expression(expr: str, *, allow_future: bool = False) -> pl.Expr:
    """One Qlib expression as a polars expression over a session panel.

    The frame it runs on must come from :func:`to_session_panel` (sorted by instrument then
    date, every session of an instrument's life present); windows run ``.over("instrument")``.
    The result is float32 with NaN for missing values, as Qlib's ``D.features`` returns it.
    """
    compiler = _Compiler("over", allow_future)
    compiler.text = expr
    node = parse(expr)
    _check_fields_used(node, expr)
    return _finish(compiler.compile(node)).alias(expr)


def to_session_panel(
    bars: pl.DataFrame,
    sessions: Sequence[date] | None = None,
    *,
    first_dates: Mapping[str, date] | None = None,
) -> pl.DataFrame:
    """Each instrument's bars reindexed onto every session from its first to its last bar.

    This is the series Qlib reads from a ``.bin`` file: the file runs from the first to the last
    bar and a session inside without a bar is NaN (here: null). ``sessions`` is the market
    calendar; by default the union of the dates in ``bars`` (what ``dump_bin`` would write).
    ``first_dates`` (an instrument's first bar ever) start an instrument's rows earlier than its
    first bar in ``bars`` (never before the calendar's first session): a recent window of bars
    then yields the same panel rows as the full history.
    """
    fields = [c for c in FIELDS if c in bars.columns]
    if sessions is None:
        calendar = bars.get_column("date").unique().sort()
    else:
        calendar = pl.Series("date", sorted(sessions), dtype=pl.Date)
    cal = pl.DataFrame({"date": calendar}).with_row_index("__slot")
    located = bars.select(INSTRUMENT, "date", *fields).join(cal, on="date", how="left")
    stray = located.filter(pl.col("__slot").is_null())
    if stray.height:
        first = stray.row(0, named=True)
        raise ValueError(
            f"{stray.height} bars fall outside the session calendar, e.g. "
            f"{first[INSTRUMENT]} on {first['date']}"
        )
    located = located.sort(INSTRUMENT, "__slot")
    names, first, last = (
        located.group_by(INSTRUMENT, maintain_order=True)
        .agg(pl.col("__slot").min().alias("first"), pl.col("__slot").max().alias("last"))
        .get_columns()
    )
    first_slot = first.to_numpy().astype(np.int64)
    if first_dates:
        # A listing before the calendar starts clamps to its first session (slot 0).
        listed = pl.DataFrame({INSTRUMENT: names}).join(
            pl.DataFrame(
                {INSTRUMENT: list(first_dates), "__listed": list(first_dates.values())},
                schema={INSTRUMENT: pl.String, "__listed": pl.Date},
            ),
            on=INSTRUMENT,
            how="left",
        )
        listed_dates = listed.get_column("__listed")
        slots = calendar.search_sorted(listed_dates.fill_null(calendar[0])).to_numpy()
        earlier = listed_dates.is_not_null().to_numpy()
        first_slot = np.where(earlier, np.minimum(first_slot, slots), first_slot)
    lengths = last.to_numpy().astype(np.int64) - first_slot + 1
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    code = np.repeat(np.arange(len(names)), lengths)
    slot = np.arange(offsets[-1]) - offsets[code] + first_slot[code]
    # Each bar's row in the panel: its instrument's offset plus its session's distance from
    # the instrument's first session (bars are sorted by instrument, then session).
    bar_code = located.get_column(INSTRUMENT).rle_id().to_numpy()
    at = offsets[bar_code] + located.get_column("__slot").to_numpy() - first_slot[bar_code]
    columns = [names.gather(pl.Series(code)).alias(INSTRUMENT), calendar.gather(pl.Series(slot))]
    spread = _spread(located.select(fields), at, int(offsets[-1]), pl.Float64)
    return pl.DataFrame([*columns, *spread])


def _spread(
    frame: pl.DataFrame, at: np.ndarray, total: int, dtype: type[pl.DataType]
) -> list[pl.Series]:
    """``frame``'s columns cast to ``dtype`` as columns of ``total`` rows holding its rows at
    ``at``: null elsewhere, and where a value is NaN."""
    source = np.zeros(total, dtype=np.int64)
    source[at] = np.arange(len(at))
    empty = np.ones(total, dtype=bool)
    empty[at] = False
    index = pl.Series(source).set(pl.Series(empty), None)
    return frame.select(pl.all().cast(dtype).fill_nan(None).gather(index)).get_columns()


def _padded(panel: pl.DataFrame, pad: int) -> pl.DataFrame:
    """The panel with ``pad`` empty rows before each instrument and after the last one.

    Windows then run over the whole column without ``over``: an instrument's first windows
    reach only into empty rows, which every window op skips.
    """
    codes = panel.get_column(INSTRUMENT).rle_id().to_numpy()
    rows = len(codes)
    n_inst = int(codes[-1]) + 1 if rows else 0
    total = rows + (n_inst + 1) * pad
    at = np.arange(rows) + (codes + 1) * pad
    starts = np.searchsorted(codes, np.arange(n_inst))
    pos = np.arange(rows) - starts[codes] if rows else np.zeros(0, dtype=np.int64)
    group = np.repeat(np.arange(n_inst + 1), pad)
    group_full = np.empty(total, dtype=np.int64)
    real = np.zeros(total, dtype=bool)
    real[at] = True
    group_full[at] = codes
    pad_slots = np.nonzero(~real)[0]
    group_full[pad_slots] = np.minimum(group, max(n_inst - 1, 0))
    pos_full = np.full(total, -1, dtype=np.int64)
    pos_full[at] = pos
    columns: dict[str, pl.Series] = {
        _REAL: pl.Series(_REAL, real),
        _POS: pl.Series(_POS, pos_full),
        _GROUP: pl.Series(_GROUP, group_full),
    }
    fields = [name for name in FIELDS if name in panel.columns]
    spread = _spread(panel.select(fields), at, total, pl.Float32)
    return pl.DataFrame([*columns.values(), *spread])


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
    # Compiling and running create many short-lived Python objects and no cycles.
    with gc_paused():
        return _compute(panel, expressions, allow_future, targets)


def _compute(
    panel: pl.DataFrame,
    expressions: Mapping[str, str],
    allow_future: bool,
    targets: Sequence[date] | None,
) -> pl.DataFrame:
    compiler = _Compiler("padded" if targets is None else "targets", allow_future)
    trees: dict[str, Node] = {}
    for name, text in expressions.items():
        compiler.text = text
        try:
            trees[name] = parse(text)
        except ExpressionError as exc:
            raise ExpressionError(f"{name}: {exc.reason}", text, exc.position) from None
        _check_fields_used(trees[name], text)
    calls = [call for tree in trees.values() for call in _calls(tree)]
    uses = Counter(call.key() for call in calls)
    compiler.shared = {key for key, count in uses.items() if count > 1}
    codes = panel.get_column(INSTRUMENT).rle_id().to_numpy()
    lengths = np.bincount(codes).astype(np.float64)
    squares = float(((lengths - 1) * lengths * (2 * lengths - 1) / 6).sum())
    compiler.exact_totals = squares < _EXACT_TOTAL
    compiler.quantiles = _quantile_levels(calls)
    compiler.ranks = _rank_windows(calls)
    outputs: list[pl.Expr] = []
    for name, tree in trees.items():
        compiler.text = expressions[name]
        try:
            out = compiler.compile(tree)
        except ExpressionError as exc:
            raise ExpressionError(f"{name}: {exc.reason}", exc.text, exc.position) from None
        outputs.append(_finish(out).alias(name))
    if targets is not None:
        return _at_targets(panel, compiler, outputs, targets)
    return _padded_run(panel, compiler, outputs)


def _padded_run(panel: pl.DataFrame, compiler: _Compiler, outputs: list[pl.Expr]) -> pl.DataFrame:
    """The compiler's stages over the padded panel, then the outputs at the panel's rows."""
    frame = _padded(panel, compiler.lookback).lazy()
    for stage in compiler.stages:
        frame = frame.with_columns(stage)
    # Filter only after the windows ran: they must see the padding rows. The in-memory engine:
    # the streaming one spends about an eighth more CPU on these wide column-wise stages (but
    # is several times faster on the ``over`` windows of the targets mode below).
    query = frame.select(_REAL, *outputs).filter(pl.col(_REAL)).drop(_REAL)
    result = query.collect(engine="in-memory")
    return pl.concat([panel.select(INSTRUMENT, "date"), result], how="horizontal")


def _at_targets(
    panel: pl.DataFrame, compiler: _Compiler, outputs: list[pl.Expr], targets: Sequence[date]
) -> pl.DataFrame:
    """Window inputs over the whole panel, then windows and outputs at the target rows only."""
    codes = panel.get_column(INSTRUMENT).rle_id().to_numpy()
    starts = np.flatnonzero(np.diff(codes, prepend=-1))
    ends = np.append(starts[1:], len(codes))
    pos = np.arange(len(codes)) - starts[codes]
    length = (ends - starts)[codes]
    wanted = pl.Series("date", list(targets), dtype=pl.Date)
    rows = np.flatnonzero(panel.get_column("date").is_in(wanted.implode()).to_numpy())
    full = panel.lazy().select(*compiler.full_columns.values()).collect()
    at = pos[rows]
    columns: list[pl.Series] = []
    for job in compiler.gathers.values():
        if job.op == "Ref":
            # Ref reads the row ``n`` sessions back (ahead when negative) of the same instrument.
            source = at - job.n
            inside = (source >= 0) & (source < length[rows])
            index = pl.Series(np.where(inside, rows - job.n, 0), dtype=pl.Int64)
            index = index.set(pl.Series(~inside), None)
            columns.append(full.get_column(job.inputs[0]).gather(index).alias(job.name))
            continue
        values = [
            full.get_column(c).cast(pl.Float64).fill_null(np.nan).to_numpy() for c in job.inputs
        ]
        result = window_statistic_at(job.op, values, rows, at, job.n, job.quantile)
        columns.append(pl.Series(job.name, result, dtype=pl.Float64, nan_to_null=True))
    frame = panel[rows].with_columns(columns)
    return frame.lazy().select(INSTRUMENT, "date", *outputs).collect()


def _calls(node: Node) -> Iterator[Call]:
    """``node`` and every call inside it, outermost first."""
    if isinstance(node, Call):
        yield node
        for arg in node.args:
            yield from _calls(arg)


def _quantile_levels(calls: Sequence[Call]) -> dict[str, dict[int, tuple[float, ...]]]:
    """The levels of every well-formed ``Quantile(x, n, q)``, by ``x`` and ``n``."""
    levels: dict[str, dict[int, set[float]]] = {}
    for call in calls:
        if call.op == "Quantile" and len(call.args) == 3:
            feature, n, q = call.args
            if _positive_int(n) and isinstance(q, Const):
                windows = levels.setdefault(feature.key(), {})
                windows.setdefault(n.value, set()).add(float(q.value))
    return {
        key: {n: tuple(sorted(qs)) for n, qs in sorted(windows.items())}
        for key, windows in levels.items()
    }


def _extreme_group(feature: Node, op: str) -> str:
    return f"{feature.key()}|{'max' if op in ('Max', 'IdxMax') else 'min'}"


def _rank_windows(calls: Sequence[Call]) -> dict[str, tuple[int, ...]]:
    """The windows of every well-formed ``Rank(x, n)``, by ``x``."""
    windows: dict[str, set[int]] = {}
    for call in calls:
        if call.op == "Rank" and len(call.args) == 2:
            feature, n = call.args
            if _positive_int(n):
                windows.setdefault(feature.key(), set()).add(n.value)
    return {key: tuple(sorted(ns)) for key, ns in windows.items()}


def _positive_int(node: Node) -> TypeGuard[Const]:
    """A window literal the compiler accepts (invalid ones fail when compiled)."""
    return isinstance(node, Const) and isinstance(node.value, int) and node.value > 0
