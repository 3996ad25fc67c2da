"""What a set of expressions needs before it is compiled: how many sessions one output row
depends on, which subexpressions several expressions share, which windows and levels of one
input are ranked or taken quantiles of, and how a long window is merged from two shorter ones."""

from collections import Counter
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TypeGuard

import numpy as np

from qlib_assets.features.expressions.operators import OPERATORS
from qlib_assets.features.expressions.parser import Call, Const, Node, parse

# Whole numbers add up exactly in float64 below this.
_EXACT_TOTAL = 2.0**53


@dataclass(frozen=True)
class Plan:
    """``shared``: keys of the calls more than one place reads; ``ranks``: by input key, the
    windows it is ranked over; ``quantiles``: by input key and window, the levels taken of it;
    ``exact_totals``: running totals of whole numbers over the
    panel (the largest: squared session positions) stay exact in float64."""

    shared: frozenset[str] = frozenset()
    ranks: dict[str, tuple[int, ...]] = field(default_factory=dict)
    quantiles: dict[str, dict[int, tuple[float, ...]]] = field(default_factory=dict)
    exact_totals: bool = True


def plan(trees: Sequence[Node], instrument_lengths: np.ndarray) -> Plan:
    calls = [call for tree in trees for call in calls_in(tree)]
    uses = Counter(call.key() for call in calls)
    lengths = instrument_lengths.astype(np.float64)
    squares = float(((lengths - 1) * lengths * (2 * lengths - 1) / 6).sum())
    return Plan(
        shared=frozenset(key for key, count in uses.items() if count > 1),
        ranks=_rank_windows(calls),
        quantiles=_quantile_levels(calls),
        exact_totals=squares < _EXACT_TOTAL,
    )


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
    spec = OPERATORS.get(node.op)
    at = None if spec is None else spec.window_at
    window = None if at is None or at >= len(node.args) else node.args[at]
    if not isinstance(window, Const):
        return inner
    n = window.value
    if node.op == "Ref":
        return inner + max(int(n), 0)
    if isinstance(n, int):
        return inner + max(n - 1, 0) + (node.op == "Delta")
    return inner


def calls_in(node: Node) -> Iterator[Call]:
    """``node`` and every call inside it, outermost first."""
    if isinstance(node, Call):
        yield node
        for arg in node.args:
            yield from calls_in(arg)


def _quantile_levels(calls: Sequence[Call]) -> dict[str, dict[int, tuple[float, ...]]]:
    """The levels of every well-formed ``Quantile(x, n, q)``, by ``x`` and ``n``."""
    levels: dict[str, dict[int, set[float]]] = {}
    for call in calls:
        if call.op == "Quantile" and len(call.args) == 3:
            feature, n, q = call.args
            if _positive_int(n) and isinstance(q, Const):
                windows = levels.setdefault(feature.key(), {})
                windows.setdefault(int(n.value), set()).add(float(q.value))
    return {
        key: {n: tuple(sorted(qs)) for n, qs in sorted(windows.items())}
        for key, windows in levels.items()
    }


def _rank_windows(calls: Sequence[Call]) -> dict[str, tuple[int, ...]]:
    """The windows of every well-formed ``Rank(x, n)``, by ``x``."""
    windows: dict[str, set[int]] = {}
    for call in calls:
        if call.op == "Rank" and len(call.args) == 2:
            feature, n = call.args
            if _positive_int(n):
                windows.setdefault(feature.key(), set()).add(int(n.value))
    return {key: tuple(sorted(ns)) for key, ns in windows.items()}


def _positive_int(node: Node) -> TypeGuard[Const]:
    """A window literal the compiler accepts (invalid ones fail when compiled)."""
    return isinstance(node, Const) and isinstance(node.value, int) and node.value > 0


def window_split(n: int, built: Collection[int]) -> int:
    """How window ``n`` is merged from two shorter windows: the length ``k`` of its newer part,
    next to an older window of ``n - k`` rows ending ``k`` rows back. The longest window already
    built below ``n`` when it covers at least half of ``n``, else the upper half of ``n`` (to be
    built first, as is the older part when missing)."""
    k = max((size for size in built if size < n), default=0)
    return k if 2 * k >= n else (n + 1) // 2
