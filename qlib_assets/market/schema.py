"""The canonical daily-bar schema every landing file is converted into."""

import polars as pl

KEY_COLUMNS = ("instrument", "date")
PRICE_COLUMNS = ("open", "high", "low", "close")
FIELD_COLUMNS = ("open", "high", "low", "close", "volume", "amount", "vwap", "factor")
BAR_COLUMNS = (*KEY_COLUMNS, *FIELD_COLUMNS)

BAR_SCHEMA: dict[str, pl.DataType] = {
    "instrument": pl.String(),
    "date": pl.Date(),
    **{name: pl.Float64() for name in FIELD_COLUMNS},
}

# Columns a landing file must carry; amount, vwap and factor can be derived (Qlib's collector
# CSVs carry no amount).
REQUIRED_COLUMNS = ("instrument", "date", "open", "high", "low", "close", "volume")
OPTIONAL_COLUMNS = ("amount", "vwap", "factor")


def empty_bars() -> pl.DataFrame:
    return pl.DataFrame(schema=BAR_SCHEMA)


def canonical(bars: pl.DataFrame) -> pl.DataFrame:
    """Bars in canonical column order and types, sorted by instrument then date."""
    return bars.select(pl.col(name).cast(dtype) for name, dtype in BAR_SCHEMA.items()).sort(
        KEY_COLUMNS
    )
