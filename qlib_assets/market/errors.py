"""The error raised for bad input: it names the file, the row and the rule."""

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Violation:
    """One broken rule. ``row`` is the 1-based data row in the file (None: the whole file)."""

    file: str
    rule: str
    message: str
    row: int | None = None
    value: Any = None

    def describe(self) -> str:
        where = f"{self.file}" if self.row is None else f"{self.file}, row {self.row}"
        shown = "" if self.value is None else f" (value: {self.value!r})"
        return f"{where}: rule '{self.rule}': {self.message}{shown}"

    def as_json(self) -> dict[str, Any]:
        record = asdict(self)
        record["value"] = None if self.value is None else str(self.value)
        return record


class LandingFileError(ValueError):
    """A landing file broke one or more hard validation rules."""

    def __init__(self, path: Path, violations: list[Violation]) -> None:
        self.path = path
        self.violations = violations
        shown = "\n".join(f"  - {v.describe()}" for v in violations[:10])
        more = f"\n  ... and {len(violations) - 10} more" if len(violations) > 10 else ""
        super().__init__(f"rejected landing file {path}:\n{shown}{more}")
