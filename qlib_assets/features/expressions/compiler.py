"""Syntax trees to polars expressions: the part every evaluation strategy shares.

:class:`Compiler` compiles operators by their family in :data:`.operators.OPERATORS` and leaves
to its subclasses where windows run and what is worth its own column: :mod:`.over` (windows
``.over("instrument")``, one expression at a time), :mod:`.padded` (windows over a panel
padded between instruments, work shared between many expressions), :mod:`.targets` (windows
at a few output rows only).
"""

from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import polars as pl

from qlib_assets.features.expressions.kernels import CONSTANT_STD
from qlib_assets.features.expressions.operators import OPERATORS, SUPPORTED, Operator
from qlib_assets.features.expressions.panel import GROUP, POS
from qlib_assets.features.expressions.parser import Call, Const, ExpressionError, Field, Node
from qlib_assets.features.expressions.planning import Plan
from qlib_assets.features.expressions.windows import window_kernel

Kind = Literal["bool", "f32", "f64"]
DTYPE: dict[Kind, pl.DataType] = {"f32": pl.Float32(), "f64": pl.Float64(), "bool": pl.Boolean()}
# Operators computed from the windowed sums of the valid values against their positions.
_REGRESSION = ("Slope", "Rsquare", "Resi", "WMA")


@dataclass(frozen=True)
class Compiled:
    """A compiled node: its polars expression and what the compiler knows about its values."""

    expr: pl.Expr
    kind: Kind
    # Missing on every padding row (padded layout), so a window may read it without masking.
    clean: bool
    # Holds no NaN (missing values are nulls), so windows and comparisons need no fill_nan.
    nan_free: bool
    # The columns it reads are made in stages before this one (padded layout).
    stage: int = 0


class Compiler:
    """Compiles nodes of one or more expressions; subexpressions are compiled once.

    The hooks (:meth:`field`, :meth:`win`, :meth:`mask`, :meth:`pos`, :meth:`column`,
    :meth:`materialise`, :meth:`window_column`, :meth:`window_sum`, :meth:`shared_window`,
    :meth:`paired_variance`) default to plain expressions over the frame's rows as they are.
    """

    # The column whose runs EMA's carried value must not cross.
    ema_group = GROUP

    def __init__(self, allow_future: bool, plan: Plan | None = None) -> None:
        self.allow_future = allow_future
        self.plan = plan or Plan()
        self.lookback = 1
        self.text = ""
        self.cache: dict[str, Compiled] = {}
        # Regression sums by (input, window), their parts by input, running totals by part,
        # the paired columns of Corr/Cov by "left|right|part".
        self.sum_cache: dict[tuple[str, int], tuple[dict[str, pl.Expr], int]] = {}
        self.part_cache: dict[str, tuple[dict[str, pl.Expr], int]] = {}
        self.totals: dict[str, tuple[pl.Expr, int]] = {}
        self.pairs: dict[str, tuple[pl.Expr, int]] = {}

    # -- hooks -------------------------------------------------------------------------------

    def field(self, node: Field) -> Compiled:
        expr = pl.col(node.name).cast(pl.Float32).fill_nan(None)
        return Compiled(expr, "f32", clean=True, nan_free=True)

    def win(self, expr: pl.Expr) -> pl.Expr:
        """``expr``'s windows and shifts kept within an instrument."""
        return expr

    def mask(self, expr: pl.Expr) -> pl.Expr:
        """``expr`` missing where no window may read a value."""
        return expr

    def pos(self) -> pl.Expr:
        """Each row's index within its instrument."""
        return pl.col(POS)

    def column(self, expr: pl.Expr, stage: int) -> tuple[pl.Expr, int]:
        """``expr`` (reading columns up to ``stage``) as what later expressions read."""
        return expr, stage

    def materialise(self, node: Node, out: Compiled) -> Compiled:
        """A compiled node as what the nodes above it read."""
        return out

    def window_column(self, node: Node) -> tuple[pl.Expr, int]:
        """``node``'s window input and its stage."""
        out = self.compile(node)
        return self.window_input(out), out.stage

    def window_sum(self, x: pl.Expr, n: int, stage: int) -> tuple[pl.Expr, int]:
        """The sum of x's present values over each window of n rows (null where none is)."""
        return self.win(x.rolling_sum(n, min_samples=1)), stage

    def shared_window(
        self, op: str, feature: Node, x: pl.Expr, n: int, q: float | None, stage: int
    ) -> Compiled | None:
        """A window operator from work shared with other windows, or None for its own form."""
        return None

    def paired_variance(self, paired: pl.Expr, feature: Node, std: pl.Expr, n: int) -> pl.Expr:
        """The rolling variance of one paired side of Corr."""
        return self.win(paired.rolling_var(n, min_samples=1))

    # -- structure ---------------------------------------------------------------------------

    def fail(self, message: str, node: Node) -> ExpressionError:
        return ExpressionError(message, self.text, node.pos)

    def compile(self, node: Node) -> Compiled:
        key = node.key()
        if key in self.cache:
            return self.cache[key]
        out = self.materialise(node, self._compile(node))
        if isinstance(node, Call):
            self.cache[key] = out
        return out

    def _compile(self, node: Node) -> Compiled:
        if isinstance(node, Field):
            return self.field(node)
        if isinstance(node, Const):
            return Compiled(pl.lit(node.value, dtype=pl.Float64), "f64", False, nan_free=True)
        spec = OPERATORS.get(node.op)
        if spec is None:
            known = ", ".join(SUPPORTED)
            raise self.fail(f"unknown operator {node.op!r} (known: {known})", node)
        if spec.family == "unsupported":
            raise self.fail(f"operator {node.op} is not supported by the polars engine", node)
        return self.call(spec, node)

    def call(self, spec: Operator, node: Call) -> Compiled:
        self.arity(node, spec.arity)
        family = spec.family
        if family == "element":
            return self.element(spec.name, self.compile(node.args[0]), node)
        if family in ("arithmetic", "compare", "logic"):
            left, right = node.args
            return self.pair(spec.name, left, right, node)
        if family == "if":
            return self.if_(node)
        if family == "ref":
            return self.ref(node)
        if family == "ema":
            return self.ema(node)
        if family == "delta":
            return self.delta(node)
        if family == "pair_window":
            return self.pair_rolling(spec, node)
        return self.rolling(spec, node)

    def arity(self, node: Call, expected: int) -> None:
        if len(node.args) != expected:
            raise self.fail(
                f"{node.op} takes {expected} argument{'s' * (expected != 1)}, got {len(node.args)}",
                node,
            )

    def window(self, call: Call, arg: Node) -> int:
        if not isinstance(arg, Const) or not isinstance(arg.value, int):
            raise self.fail(f"{call.op}'s window must be an integer literal", arg)
        if arg.value == 0:
            raise self.fail(f"{call.op} with N=0 (expanding window) is not supported", arg)
        if arg.value < 0:
            raise self.fail(f"{call.op}'s window must be positive", arg)
        least = OPERATORS[call.op].least_window
        if arg.value < least:
            raise self.fail(f"{call.op}'s window must be at least {least}", arg)
        self.lookback = max(self.lookback, arg.value)
        return arg.value

    def level(self, call: Call) -> float:
        q = call.args[2]
        if not isinstance(q, Const) or not 0 <= q.value <= 1:
            raise self.fail("Quantile's third argument must be a number in [0, 1]", q)
        return float(q.value)

    # -- helpers -----------------------------------------------------------------------------

    @staticmethod
    def numeric(out: Compiled, kind: Kind) -> pl.Expr:
        expr = out.expr
        if out.kind != kind:
            expr = expr.cast(pl.Float32 if kind == "f32" else pl.Float64)
        return expr if out.nan_free else expr.fill_nan(None)

    def window_input(self, out: Compiled) -> pl.Expr:
        """Float64, NaN as missing, and missing on padding rows: what a window may read."""
        expr = self.numeric(out, "f64")
        return expr if out.clean else self.mask(expr)

    @staticmethod
    def out64(expr: pl.Expr, stage: int, nan_free: bool = True) -> Compiled:
        return Compiled(expr, "f64", clean=False, nan_free=nan_free, stage=stage)

    # -- element-wise ------------------------------------------------------------------------

    def element(self, op: str, x: Compiled, node: Call) -> Compiled:
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
        logged = expr.map_batches(_numpy_log, return_dtype=DTYPE[kind], is_elementwise=True)
        return replace(x, expr=logged, kind=kind, nan_free=False)

    def pair(self, op: str, left_node: Node, right_node: Node, node: Call) -> Compiled:
        left, right = self.compile(left_node), self.compile(right_node)
        stage = max(left.stage, right.stage)
        family = OPERATORS[op].family
        if family == "logic":
            if left.kind != "bool" or right.kind != "bool":
                raise self.fail(f"{op} needs boolean operands (comparisons)", node)
            expr = left.expr & right.expr if op == "And" else left.expr | right.expr
            return Compiled(self.mask(expr), "bool", clean=True, nan_free=True, stage=stage)
        kind = _result_kind((left, left_node), (right, right_node))
        a = self.numeric(left, kind)
        b = self.numeric(right, kind)
        clean = (left.clean or isinstance(left_node, Const)) and (
            right.clean or isinstance(right_node, Const)
        )
        if family == "compare":
            compared = {
                "Gt": a > b,
                "Ge": a >= b,
                "Lt": a < b,
                "Le": a <= b,
                "Eq": a == b,
                "Ne": a != b,
            }[op]
            expr = self.mask(compared.fill_null(op == "Ne"))
            return Compiled(expr, "bool", clean=True, nan_free=True, stage=stage)
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
        return Compiled(expr, kind, clean=clean, nan_free=nan_free, stage=stage)

    def if_(self, node: Call) -> Compiled:
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
        return Compiled(self.mask(expr), kind, clean=True, nan_free=nan_free, stage=stage)

    # -- shifts ------------------------------------------------------------------------------

    def ref(self, node: Call) -> Compiled:
        feature, n_node = node.args
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
        return Compiled(self.win(x.expr.shift(n)), x.kind, False, x.nan_free, x.stage)

    def delta(self, node: Call) -> Compiled:
        feature, n_node = node.args
        n = self.window(node, n_node)
        x_out = self.compile(feature)
        x = self.numeric(x_out, x_out.kind if x_out.kind != "bool" else "f32")
        kind: Kind = "f64" if x_out.kind == "f64" else "f32"
        return Compiled(x - self.win(x.shift(n)), kind, False, x_out.nan_free, x_out.stage)

    def ema(self, node: Call) -> Compiled:
        feature, n_node = node.args
        span: int | None = None
        alpha: float | None = None
        if isinstance(n_node, Const) and isinstance(n_node.value, float):
            if not 0 < n_node.value < 1:
                raise self.fail("EMA's float argument is alpha and must be in (0, 1)", n_node)
            alpha = n_node.value
        else:
            span = self.window(node, n_node)
        x_out = self.compile(feature)
        x = self.window_input(x_out)
        smoothed = x.ewm_mean(span=span, alpha=alpha, adjust=True, min_samples=1)
        # pandas' ewm carries the last mean over a missing session; polars leaves it empty.
        return self.out64(smoothed.forward_fill().over(self.ema_group), x_out.stage)

    # -- windows -----------------------------------------------------------------------------

    def rolling(self, spec: Operator, node: Call) -> Compiled:
        op, feature = spec.name, node.args[0]
        n_node = node.args[spec.window_at or 1]
        n = self.window(node, n_node)
        q = self.level(node) if op == "Quantile" else None
        x_out = self.compile(feature)
        x, stage = self.window_column(feature)
        if op in ("Mean", "Sum") and x_out.kind == "bool":
            return self.window_mean(op, x, n, stage, counting=True)
        shared = self.shared_window(op, feature, x, n, q, stage)
        if shared is not None:
            return shared
        if op == "Count":
            count, count_stage = self.counting_sum(present(x), n, stage)
            return self.out64(count, count_stage)
        if op in _REGRESSION:
            return self.regression(op, feature, n_node, x, n, stage)
        if spec.rolling is not None:
            expr = self.win(spec.rolling(x, n, q))
            return self.out64(expr, stage, nan_free=spec.nan_free)
        struct = pl.struct(x.alias("v"), self.pos().alias("p"))
        expr = struct.map_batches(window_kernel(op, n), return_dtype=pl.Float64)
        return self.out64(expr, stage)

    def counting_sum(self, part: pl.Expr, n: int, stage: int) -> tuple[pl.Expr, int]:
        """The window sum of a whole-number part (a presence flag, a session position, its
        square) as a difference of running totals, computed once for every window: exact
        while the totals stay below 2**53, and several times cheaper than a rolling sum.
        An all-missing window sums to 0 here, not null; every reader of these sums also reads
        a data sum that is null there."""
        if not self.plan.exact_totals:
            return self.win(part.rolling_sum(n, min_samples=1)), stage
        key = str(part)
        if key not in self.totals:
            self.totals[key] = self.column(self.win(part.fill_null(0.0).cum_sum()), stage)
        total, total_stage = self.totals[key]
        return self.win(total - total.shift(n, fill_value=0.0)), total_stage

    def window_mean(self, op: str, x: pl.Expr, n: int, stage: int, counting: bool) -> Compiled:
        """Mean or Sum of x's present values, missing where the window holds none. A
        comparison (0/1, missing on padding rows only) sums as :meth:`counting_sum` does."""
        summed = self.counting_sum if counting else self.window_sum
        total, total_stage = summed(x, n, stage)
        count, count_stage = self.counting_sum(present(x), n, stage)
        value = total if op == "Sum" else total / count
        return self.out64(pl.when(count > 0).then(value), max(total_stage, count_stage))

    # -- regressions on the session position ---------------------------------------------------

    def regression(
        self, op: str, feature: Node, n_node: Node, x: pl.Expr, n: int, stage: int
    ) -> Compiled:
        sums, stage = self.sums(x, n, stage)
        if op == "WMA":
            return self.out64(self.wma(n, sums), stage)
        if op == "Rsquare":
            std, flat_stage = self.own_std(feature, n_node)
            rsquare = _rsquare(sums, std <= CONSTANT_STD)
            return self.out64(rsquare, max(stage, flat_stage), nan_free=False)
        s = sums
        slope = (s["n"] * s["ty"] - s["t"] * s["y"]) / (s["n"] * s["tt"] - s["t"] * s["t"])
        if op == "Slope":
            return self.out64(slope, stage, nan_free=False)
        t = self.pos().cast(pl.Float64)
        resi = (x - s["y"] / s["n"]) - slope * (t - s["t"] / s["n"])
        return self.out64(resi, stage, nan_free=False)

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
            if name in ("n", "t", "tt"):
                sums[name], part_stage = self.column(*self.counting_sum(part, n, stage))
            else:
                sums[name], part_stage = self.window_sum(part, n, stage)
            summed = max(summed, part_stage)
        self.sum_cache[cache_key] = (sums, summed)
        return sums, summed

    def sum_parts(self, x: pl.Expr, stage: int) -> tuple[dict[str, pl.Expr], int]:
        """What :meth:`sums` adds up, the same for every window: the whole-number parts
        (presence, session position, its square) and the data parts."""
        key = str(x)
        if key not in self.part_cache:
            t = pl.when(x.is_not_null()).then(self.pos().cast(pl.Float64))
            parts = {"n": present(x), "t": t, "tt": t * t, "y": x, "ty": t * x, "yy": x * x}
            columns: dict[str, pl.Expr] = {}
            part_stage = stage
            for name, part in parts.items():
                if part.meta.is_column():
                    columns[name] = part
                else:
                    columns[name], part_stage = self.column(part, stage)
            self.part_cache[key] = (columns, part_stage)
        return self.part_cache[key]

    def wma(self, n: int, s: dict[str, pl.Expr]) -> pl.Expr:
        pos = self.pos().cast(pl.Float64)
        length = pl.min_horizontal(pl.lit(float(n)), pos + 1.0)
        weighted = s["ty"] - (pos - length) * s["y"]
        return weighted / (length * (length + 1.0) / 2.0) / s["n"]

    def own_std(self, feature: Node, n_node: Node) -> tuple[pl.Expr, int]:
        """``Std(feature, n)`` as the same node as a Std factor, so its column is computed once
        for STD, Rsquare and Corr of one input and window (Qlib's constant-window test)."""
        std = self.compile(Call("Std", (feature, n_node), feature.pos))
        return std.expr, std.stage

    # -- pairs -------------------------------------------------------------------------------

    def paired(
        self, left: Node, right: Node, names: tuple[str, ...]
    ) -> tuple[dict[str, pl.Expr], int]:
        """Columns of the two sides of Corr/Cov as pandas pairs them (a row counts only when
        both are present): ``a``, ``b``, their product ``ab``, sum ``sum`` and the pair
        indicator ``both``, those of ``names``, each made once for every window of the pair."""
        a, stage_a = self.window_column(left)
        b, stage_b = self.window_column(right)
        pa = pl.when(b.is_not_null()).then(a)
        pb = pl.when(a.is_not_null()).then(b)
        stage = max(stage_a, stage_b)
        parts = {"a": pa, "b": pb, "ab": pa * pb, "sum": pa + pb, "both": present(pa)}
        columns: dict[str, pl.Expr] = {}
        paired_stage = stage
        for name in names:
            key = f"{left.key()}|{right.key()}|{name}"
            if key not in self.pairs:
                self.pairs[key] = self.column(parts[name], stage)
            columns[name], paired_stage = self.pairs[key]
        return columns, paired_stage

    def pair_rolling(self, spec: Operator, node: Call) -> Compiled:
        left_node, right_node, n_node = node.args
        n = self.window(node, n_node)
        if spec.name == "Cov":
            paired, stage = self.paired(left_node, right_node, ("a", "b", "ab", "both"))
            count, count_stage = self.counting_sum(paired["both"], n, stage)
            means = {}
            for name in ("ab", "a", "b"):
                total, total_stage = self.window_sum(paired[name], n, stage)
                means[name] = total / count
                count_stage = max(count_stage, total_stage)
            cov = (means["ab"] - means["a"] * means["b"]) * (count / (count - 1.0))
            return self.out64(cov, max(stage, count_stage), nan_free=False)
        paired, stage = self.paired(left_node, right_node, ("a", "b", "sum"))
        std_a, stage_a = self.own_std(left_node, n_node)
        std_b, stage_b = self.own_std(right_node, n_node)
        var_a = self.paired_variance(paired["a"], left_node, std_a, n)
        var_b = self.paired_variance(paired["b"], right_node, std_b, n)
        # The covariance from Var(a + b) = Var(a) + Var(b) + 2 Cov(a, b): one rolling variance
        # instead of three window sums, and no E[ab] - E[a]E[b] cancellation.
        var_sum = self.win(paired["sum"].rolling_var(n, min_samples=1))
        corr = (var_sum - var_a - var_b) / 2.0 / (var_a * var_b).sqrt()
        # Qlib tests each side's own std, over its rows whether or not the other is present.
        flat = (std_a <= CONSTANT_STD) | (std_b <= CONSTANT_STD)
        corr = pl.when(flat).then(None).otherwise(corr)
        return self.out64(corr, max(stage, stage_a, stage_b), nan_free=False)


def _rsquare(s: dict[str, pl.Expr], flat: pl.Expr) -> pl.Expr:
    covariance = s["n"] * s["ty"] - s["t"] * s["y"]
    spread_t = s["n"] * s["tt"] - s["t"] * s["t"]
    spread_y = s["n"] * s["yy"] - s["y"] * s["y"]
    rsquare = covariance * covariance / (spread_t * spread_y)
    return pl.when(flat).then(None).otherwise(rsquare)


def _numpy_log(series: pl.Series) -> pl.Series:
    with np.errstate(divide="ignore", invalid="ignore"):
        values = np.log(series.fill_null(np.nan).to_numpy())
    return pl.Series(series.name, values, nan_to_null=True)


def present(x: pl.Expr) -> pl.Expr:
    """1.0 where ``x`` holds a value, else 0.0."""
    return x.is_not_null().cast(pl.Float64)


def _result_kind(*operands: tuple[Compiled, Node]) -> Kind:
    """numpy's promotion: float32 stays float32 against float32, booleans or Python numbers."""
    kinds = {out.kind for out, node in operands if not isinstance(node, Const)}
    return "f64" if "f64" in kinds or not kinds else "f32"


def finish(out: Compiled) -> pl.Expr:
    """Qlib's ``D.features`` casts every result to float32; missing values are NaN."""
    expr = out.expr.cast(pl.Float32)
    return expr.fill_null(float("nan"))
