"""Every row of a panel, windows over whole columns of the padded layout, work shared between
many expressions.

Each window input is its own column; window sums and Max/Min with IdxMax/IdxMin are built for a
long window by merging two shorter windows of the same input (a 60-row window from two of 30, 30
from 20 and 10 ...), so all windows of one input cost about as much as the longest alone, and a
sum stays a direct sum of its window's rows; Quantile's sorted cells are merged likewise
(:mod:`.quantiles`); Rank over all windows of one input comes from one lag walk; Corr pairs its
sides once for every window; whole-number window sums (counts, positions) are differences of
running totals. Columns are computed stage by stage: polars runs a stage's columns in parallel,
and each is computed once however many expressions read it.
"""

from collections.abc import Callable

import polars as pl

from qlib_assets.features.expressions.compiler import Compiled, Compiler, present
from qlib_assets.features.expressions.operators import OPERATORS
from qlib_assets.features.expressions.panel import INSTRUMENT, REAL, padded_panel
from qlib_assets.features.expressions.parser import Call, Field, Node
from qlib_assets.features.expressions.planning import Plan, window_split
from qlib_assets.features.expressions.quantiles import quantiles_kernel
from qlib_assets.features.expressions.windows import paired_variance_kernel, ranks_kernel

# A window's columns, and how two adjacent windows' columns make the longer window's:
# merge(older, newer, older's length, newer's length).
Parts = tuple[pl.Expr, ...]
Merge = Callable[[Parts, Parts, int, int], Parts]


class PaddedCompiler(Compiler):
    def __init__(self, allow_future: bool, plan: Plan | None = None) -> None:
        super().__init__(allow_future, plan)
        self.stages: list[list[pl.Expr]] = []
        # Materialised window inputs by node key.
        self.inputs: dict[str, tuple[pl.Expr, int]] = {}
        # By window length: each summed expression's window sums; each input's (extreme, its
        # first position, first missing position) by "input|max" (or min).
        self.window_sums: dict[str, dict[int, tuple[Parts, int]]] = {}
        self.extremes: dict[str, dict[int, tuple[Parts, int]]] = {}
        self.rank_structs: dict[str, tuple[pl.Expr, int]] = {}
        self.quantile_structs: dict[str, tuple[pl.Expr, int]] = {}

    def field(self, node: Field) -> Compiled:
        # The padded layout stores fields as float32 with nulls for missing values.
        return Compiled(pl.col(node.name), "f32", clean=True, nan_free=True)

    def mask(self, expr: pl.Expr) -> pl.Expr:
        return pl.when(pl.col(REAL)).then(expr)

    def column(self, expr: pl.Expr, stage: int) -> tuple[pl.Expr, int]:
        """Materialise ``expr`` (reading columns up to ``stage``) as a column of stage+1."""
        name = f"__c{sum(len(s) for s in self.stages)}"
        while len(self.stages) <= stage:
            self.stages.append([])
        self.stages[stage].append(expr.alias(name))
        return pl.col(name), stage + 1

    def materialise(self, node: Node, out: Compiled) -> Compiled:
        """Own columns for what several expressions read and for every window's result."""
        key = node.key()
        windowed = isinstance(node, Call) and _windowed(node)
        if key in self.plan.shared or windowed:
            column, stage = self.column(out.expr, out.stage)
            return Compiled(column, out.kind, out.clean, out.nan_free, stage)
        return out

    def window_column(self, node: Node) -> tuple[pl.Expr, int]:
        """Materialised once as its own column when it is more than a column read (a cast, NaN
        cleaning, the padding mask): polars would otherwise redo that work inside every window
        op that reads it."""
        expr, stage = super().window_column(node)
        if expr.meta.is_column():
            return expr, stage
        key = node.key()
        if key not in self.inputs:
            self.inputs[key] = self.column(expr, stage)
        return self.inputs[key]

    def window_sum(self, x: pl.Expr, n: int, stage: int) -> tuple[pl.Expr, int]:
        """From shorter windows' sums (:meth:`merged`): all windows of one input take a few
        additions in all, and each is a direct sum of its own rows, so all-zero windows sum to
        exactly 0, with no drift from a running add-and-subtract. 0 where none is present."""
        key = str(x)
        if key not in self.window_sums:
            self.window_sums[key] = {1: ((self.column(x.fill_null(0.0), stage)[0],), stage + 1)}

        def add(older: Parts, newer: Parts, _: int, k: int) -> Parts:
            return (newer[0] + older[0].shift(k, fill_value=0.0),)

        (total,), total_stage = self.merged(self.window_sums[key], n, add)
        return total, total_stage

    def shared_window(
        self, op: str, feature: Node, x: pl.Expr, n: int, q: float | None, stage: int
    ) -> Compiled | None:
        if op in ("Mean", "Sum"):
            return self.window_mean(op, x, n, stage, counting=False)
        if op in ("Max", "Min", "IdxMax", "IdxMin"):
            group = f"{feature.key()}|{'max' if op in ('Max', 'IdxMax') else 'min'}"
            return self.extreme(x, stage, group, op, n)
        if op == "Rank" and len(self.plan.ranks.get(feature.key(), ())) > 1:
            return self.rank(x, stage, feature.key(), n)
        if op == "Quantile" and q is not None:
            return self.quantile(x, stage, feature.key(), n, q)
        return None

    def paired_variance(self, paired: pl.Expr, feature: Node, std: pl.Expr, n: int) -> pl.Expr:
        """A kernel checks the column first: where the other side is never missing alone, the
        paired side is the side itself, whose variance is the square of its Std column
        (computed anyway for the constant-window test), saving a rolling variance per window."""
        own, _ = self.window_column(feature)
        struct = pl.struct(paired.alias("paired"), own.alias("own"), std.alias("std"))
        return struct.map_batches(paired_variance_kernel(n), return_dtype=pl.Float64)

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

    def extreme(self, x: pl.Expr, stage: int, group: str, op: str, n: int) -> Compiled:
        """Max/Min and IdxMax/IdxMin from each window's extreme, the position where it first
        occurs and the position of its first missing session (Qlib's IdxMax of a window
        holding one), merged from shorter windows (:meth:`merged`): the older part wins a tie,
        as the first occurrence. Missing and padding rows rank lowest; the padding before an
        instrument's first row is not part of Qlib's window, whose positions count from that
        first row."""
        if group not in self.extremes:
            ranked = (x if group.endswith("max") else -x).fill_null(float("-inf"))
            missing = pl.when(x.is_null() & pl.col(REAL)).then(pl.lit(0, dtype=pl.Int32))
            base = (
                self.column(ranked, stage)[0],
                pl.lit(0, dtype=pl.Int32),
                self.column(missing, stage)[0],
            )
            self.extremes[group] = {1: (base, stage + 1)}
        (best, first, gap), parts_stage = self.merged(self.extremes[group], n, _merge_extremes)
        count, count_stage = self.counting_sum(present(x), n, stage)
        stage = max(parts_stage, count_stage)
        if op in ("Max", "Min"):
            return self.out64(pl.when(count > 0).then(best if op == "Max" else -best), stage)
        before = (n - 1) - self.pos().clip(0, n - 1)
        index = (pl.coalesce(gap, first) - before + 1).cast(pl.Float64)
        return self.out64(pl.when(count > 0).then(index), stage)

    def rank(self, x: pl.Expr, stage: int, key: str, n: int) -> Compiled:
        """Rank over one of several windows of the same input: fields of one kernel's struct
        column, whose walk over the longest window serves the shorter ones."""
        windows = self.plan.ranks[key]
        if key not in self.rank_structs:
            struct = pl.struct(x.alias("v"), self.pos().alias("p"))
            dtype = pl.Struct({f"r{i}": pl.Float64 for i in range(len(windows))})
            expr = struct.map_batches(ranks_kernel(windows), return_dtype=dtype)
            self.rank_structs[key] = self.column(expr, stage)
        column, struct_stage = self.rank_structs[key]
        return self.out64(column.struct.field(f"r{windows.index(n)}"), struct_stage)

    def quantile(self, x: pl.Expr, stage: int, key: str, n: int, q: float) -> Compiled:
        """One field of a struct column holding every quantile the expressions take of the same
        input (QTLU and QTLD over all their windows): one kernel sorts every window's cells,
        the longer windows merged from the shorter ones (:mod:`.quantiles`)."""
        levels = dict(self.plan.quantiles.get(key, {}))
        levels[n] = tuple(sorted({*levels.get(n, ()), q}))
        struct_key = f"{key}|{sorted(levels.items())}"
        if struct_key not in self.quantile_structs:
            struct = pl.struct(x.alias("v"), self.pos().alias("p"))
            names = [f"q{w}_{i}" for w, qs in levels.items() for i in range(len(qs))]
            dtype = pl.Struct(dict.fromkeys(names, pl.Float64))
            expr = struct.map_batches(quantiles_kernel(levels), return_dtype=dtype)
            self.quantile_structs[struct_key] = self.column(expr, stage)
        column, struct_stage = self.quantile_structs[struct_key]
        return self.out64(column.struct.field(f"q{n}_{levels[n].index(q)}"), struct_stage)


def _windowed(node: Call) -> bool:
    spec = OPERATORS.get(node.op)
    return spec is not None and spec.windowed


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


def run_padded(
    panel: pl.DataFrame, compiler: PaddedCompiler, outputs: list[pl.Expr]
) -> pl.DataFrame:
    """The compiler's stages over the padded panel, then the outputs at the panel's rows."""
    frame = padded_panel(panel, compiler.lookback).lazy()
    for stage in compiler.stages:
        frame = frame.with_columns(stage)
    # Filter only after the windows ran: they must see the padding rows. The in-memory engine:
    # the streaming one spends more CPU on these wide column-wise stages.
    query = frame.select(REAL, *outputs).filter(pl.col(REAL)).drop(REAL)
    result = query.collect(engine="in-memory")
    return pl.concat([panel.select(INSTRUMENT, "date"), result], how="horizontal")
