"""The parity assertion of our expression engine against Qlib's."""

import numpy as np
import polars as pl


def assert_parity(ours: pl.DataFrame, theirs: pl.DataFrame, names: list[str]) -> None:
    """Same rows, same NaN patterns, and values within the issue's tolerances."""
    assert ours.select("instrument", "date").equals(theirs.select("instrument", "date"))
    for name in names:
        a = ours.get_column(name).to_numpy().astype(np.float64)
        b = theirs.get_column(name).to_numpy().astype(np.float64)
        assert np.array_equal(np.isnan(a), np.isnan(b)), f"{name}: NaN pattern differs"
        assert np.allclose(a, b, rtol=1e-4, atol=1e-5, equal_nan=True), (
            f"{name}: max diff {np.nanmax(np.abs(a - b))}"
        )
