"""PNG files as Dagster metadata: shown inline in the UI, with the path beside them."""

import base64
from pathlib import Path

import dagster as dg


def png_metadata(path: Path | str, title: str) -> dict[str, dg.MetadataValue]:
    encoded = base64.b64encode(Path(path).read_bytes()).decode()
    return {
        title: dg.MetadataValue.md(f"![{title}](data:image/png;base64,{encoded})"),
        f"{title}_path": dg.MetadataValue.path(str(path)),
    }
