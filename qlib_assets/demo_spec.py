"""The demo's market size and span (cheap to import: the CLI's parser reads its defaults)."""

from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True)
class DemoSpec:
    instruments: int = 300
    start: date = date(2021, 1, 4)
    end: date = date(2024, 12, 31)
    seed: int = 7
    windows: int = 2
