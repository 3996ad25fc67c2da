"""Alpha158 factors and the default label, from Qlib's own definitions, computed by polars.

The 158 expression strings are read from Qlib at run time (``Alpha158DL.get_feature_config``),
never retyped, and compiled by :mod:`qlib_assets.features.expressions`. ``engine="qlib"`` runs
the same strings through Qlib's ``D.features`` over a provider directory, for parity checks and
benchmarks.
"""

import ast
import importlib.util
import sys
from collections.abc import Mapping, Sequence
from datetime import date
from functools import cache
from pathlib import Path

import polars as pl

from qlib_assets.features.expressions import compute_expressions, lookback, to_session_panel
from qlib_assets.storage.provider_read import committed_provider

DEFAULT_LABEL = "Ref($close, -2) / Ref($close, -1) - 1"
LABEL_COLUMN = "label"


@cache
def alpha158_definitions() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Qlib's Alpha158 ``(fields, names)``, in Qlib's order."""
    loader = sys.modules.get(_LOADER)
    if loader is not None:
        fields, names = loader.Alpha158DL.get_feature_config()
    else:
        fields, names = _feature_config_from_source()
    return tuple(fields), tuple(names)


_LOADER = "qlib.contrib.data.loader"


def _feature_config_from_source() -> tuple[list[str], list[str]]:
    """Run ``Alpha158DL.get_feature_config`` from Qlib's source file without importing it.

    The code location needs the factors' lookback when it loads; importing Qlib's data loader
    there would import Qlib's data layer and scipy. The method is plain Python over its
    arguments; if a Qlib release makes it anything else, the real import is used.
    """
    found = importlib.util.find_spec("qlib")
    location = next(iter(found.submodule_search_locations or []), None) if found else None
    try:
        if location is None:
            raise LookupError("qlib is not a package on disk")
        tree = ast.parse((Path(location) / "contrib" / "data" / "loader.py").read_text())
        cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Alpha158DL")
        method = next(
            n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "get_feature_config"
        )
        method.decorator_list = []
        namespace: dict[str, object] = {}
        exec(compile(ast.Module(body=[method], type_ignores=[]), "<Alpha158DL>", "exec"), namespace)
        fields, names = namespace["get_feature_config"]()  # type: ignore[operator]
        return list(fields), list(names)
    except (LookupError, OSError, StopIteration, SyntaxError, NameError, TypeError):
        from qlib.contrib.data.loader import Alpha158DL

        fields, names = Alpha158DL.get_feature_config()
        return list(fields), list(names)


def alpha158_lookback() -> int:
    """Sessions (the current one included) an exact one-session run needs: 61."""
    return lookback(alpha158_definitions()[0])


def compute_alpha158(
    bars: pl.DataFrame,
    engine: str = "polars",
    sessions: Sequence[date] | None = None,
    provider_uri: Path | None = None,
    *,
    first_dates: Mapping[str, date] | None = None,
    targets: Sequence[date] | None = None,
    qlib_kernels: int = 1,
) -> pl.DataFrame:
    """``instrument, date`` plus Qlib's 158 factor columns (float32, NaN when missing).

    Rows are every session of each instrument's life between its first and last bar in
    ``bars`` (suspended sessions included, as Qlib returns them). ``sessions`` is the market
    calendar (default: the dates in ``bars``). For a one-session run over a window of recent bars,
    pass ``first_dates`` (each instrument's first bar ever) so a window that starts during a
    suspension still counts those sessions, as the full history does.

    ``targets``: return only the rows of these sessions, computing windows at those rows only
    (same values as filtering the full output; much faster for a one-session run).

    ``engine="qlib"`` reads the provider at ``provider_uri`` with Qlib's ``D.features`` over the
    instruments and dates of ``bars``, in ``qlib_kernels`` processes.
    """
    fields, names = alpha158_definitions()
    expressions = dict(zip(names, fields, strict=True))
    if engine == "polars":
        panel = to_session_panel(bars, sessions, first_dates=first_dates)
        return compute_expressions(panel, expressions, targets=targets)
    if engine == "qlib":
        if provider_uri is None:
            raise ValueError("engine='qlib' needs provider_uri, a Qlib provider directory")
        frame = qlib_features(provider_uri, expressions, bars, qlib_kernels)
        if targets is None:
            return frame
        return frame.filter(pl.col("date").is_in(pl.Series(list(targets), dtype=pl.Date).implode()))
    raise ValueError(f"unknown engine {engine!r}: use 'polars' or 'qlib'")


def compute_label(
    bars: pl.DataFrame,
    expr: str = DEFAULT_LABEL,
    sessions: Sequence[date] | None = None,
) -> pl.DataFrame:
    """``instrument, date, label``: the label expression (it may read future sessions)."""
    panel = to_session_panel(bars, sessions)
    return compute_expressions(panel, {LABEL_COLUMN: expr}, allow_future=True)


def qlib_features(
    provider_uri: Path, expressions: Mapping[str, str], bars: pl.DataFrame, kernels: int = 1
) -> pl.DataFrame:
    """Qlib's own engine over a provider: ``D.features`` for the instruments and dates of bars.

    ``kernels`` is Qlib's number of worker processes. One by default, which is also Qlib's own
    default on a machine of up to three CPUs (``cpu_count - 2``, at least 1), and keeps test
    runners free of its joblib workers; more workers split the instruments between processes.
    """
    import qlib
    from qlib.data import D

    qlib.init(
        provider_uri=str(provider_uri),
        region="cn",
        expression_cache=None,
        dataset_cache=None,
        kernels=kernels,
    )
    instruments = sorted(bars.get_column("instrument").unique().to_list())
    start = bars.get_column("date").min()
    end = bars.get_column("date").max()
    with committed_provider(provider_uri):
        frame = D.features(
            instruments, list(expressions.values()), start_time=str(start), end_time=str(end)
        )
    frame.columns = list(expressions)
    result = pl.from_pandas(frame.reset_index())
    return (
        result.with_columns(pl.col("datetime").cast(pl.Date).alias("date"))
        .select("instrument", "date", *(pl.col(n).cast(pl.Float32) for n in expressions))
        .sort("instrument", "date")
    )
