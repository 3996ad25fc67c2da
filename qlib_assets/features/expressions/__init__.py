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

Evaluation strategies: every row of a panel at once, with work shared between the expressions
(:mod:`.padded`); a few output sessions, windows computed at those rows only (:mod:`.targets`);
one expression with windows ``.over("instrument")`` (:mod:`.over`). All read the operator table
(:mod:`.operators`); the values are the same.

Not supported (a clear :class:`ExpressionError`): expanding windows (N=0), ``Ref(x, 0)`` (Qlib
returns the first loaded value, which depends on the query start), float windows other than
EMA's alpha, and the cross-instrument operators ``Mask``/``ChangeInstrument`` plus
``TResample``, ``Rolling``, ``P``, ``PRef``. Unary minus is accepted (Qlib's ``Expression`` has
no ``__neg__``); chained comparisons are refused.
"""

from qlib_assets.features.expressions.evaluate import (
    compile_expression,
    compute_expressions,
    validate_expression,
)
from qlib_assets.features.expressions.operators import SUPPORTED as OPERATORS
from qlib_assets.features.expressions.panel import INSTRUMENT, to_session_panel
from qlib_assets.features.expressions.parser import FIELDS, ExpressionError
from qlib_assets.features.expressions.planning import lookback

__all__ = [
    "FIELDS",
    "INSTRUMENT",
    "OPERATORS",
    "ExpressionError",
    "compile_expression",
    "compute_expressions",
    "lookback",
    "to_session_panel",
    "validate_expression",
]
