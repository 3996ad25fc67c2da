"""A few output sessions (the one session of a daily run): window inputs are computed over the
whole panel, each window statistic only at the target rows, from their gathered windows; the
values are those of the rows of a run over every row."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np
import polars as pl

from qlib_assets.features.expressions.compiler import DTYPE, Compiled, Compiler, Kind
from qlib_assets.features.expressions.operators import Operator
from qlib_assets.features.expressions.over import OverCompiler
from qlib_assets.features.expressions.panel import INSTRUMENT
from qlib_assets.features.expressions.parser import Call, Const, Node
from qlib_assets.features.expressions.windows import window_statistic_at


@dataclass(frozen=True)
class Gather:
    """A target-frame column read from full-frame columns: Ref's shifted value (``op="Ref"``,
    ``n`` the offset) or a window statistic over the ``n`` rows ending at each target row."""

    name: str
    op: str
    inputs: tuple[str, ...]
    n: int
    quantile: float | None = None


class TargetsCompiler(Compiler):
    """Expressions over a frame of the output rows only; their windows and shifts read
    columns of the whole panel (:attr:`full_columns`, compiled per instrument) through
    :attr:`gathers`."""

    def __init__(self, allow_future: bool) -> None:
        super().__init__(allow_future)
        self.full = OverCompiler(allow_future)
        self.full_columns: dict[str, pl.Expr] = {}
        self.gathers: dict[str, Gather] = {}

    def call(self, spec: Operator, node: Call) -> Compiled:
        if spec.family in ("ref", "delta", "ema", "window", "pair_window"):
            return self.at_targets(spec, node)
        return super().call(spec, node)

    def at_targets(self, spec: Operator, node: Call) -> Compiled:
        """A window or Ref read at the target rows, from inputs computed over the whole panel."""
        full = self.full
        full.text = self.text
        # Compiling the whole node in full context checks it (arity, window, allow_future) with
        # the same messages as the other strategies; only EMA, with its unbounded memory,
        # uses it.
        whole = full.compile(node)
        op, args = node.op, node.args
        if op == "EMA":
            return self.out64(self.gather("Ref", (self.full_input(node, whole.expr),), 0), 0)
        if op in ("Ref", "Delta"):
            n = int(args[1].value) if isinstance(args[1], Const) else 0
            x_full = full.compile(args[0])
            shifted = self.gather("Ref", (self.full_input(args[0], x_full.expr),), n)
            if op == "Ref":
                return Compiled(shifted, x_full.kind, False, x_full.nan_free)
            x = self.compile(args[0])
            kind: Kind = "f64" if x.kind == "f64" else "f32"
            current = self.numeric(x, kind)
            before = shifted.cast(DTYPE[kind])
            return Compiled(current - before, kind, False, x.nan_free and x_full.nan_free)
        window_args = args[:2] if spec.family == "pair_window" else args[:1]
        inputs = tuple(
            self.full_input(a, full.window_input(full.compile(a)), window=True) for a in window_args
        )
        n_node = args[spec.window_at or 1]
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
            self.gathers[key] = Gather(f"__t{len(self.gathers)}", op, inputs, n, q)
        return pl.col(self.gathers[key].name)


def run_at_targets(
    panel: pl.DataFrame,
    compiler: TargetsCompiler,
    outputs: list[pl.Expr],
    targets: Sequence[date],
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
