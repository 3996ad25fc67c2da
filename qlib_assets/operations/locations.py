"""Storage locations that may be a local path or a URL (s3://, gs://, file://, ...)."""

from pathlib import Path
from urllib.parse import urlsplit


def is_url(location: str | Path) -> bool:
    """A scheme of two letters or more: 's3://b/p' is a URL, 'C:/x' and '/x' are paths."""
    return isinstance(location, str) and len(urlsplit(location).scheme) > 1


def artifact_location(root: str | Path, name: str) -> str:
    """The artifact location of experiment ``name`` under ``root``, as MLflow wants it.

    A local root is created and given as a file:// URI (MLflow on SQLite otherwise writes to
    ./mlruns of the current folder); a URL root is used as is: MLflow's artifact repositories
    (S3, GCS, Azure, HDFS, SFTP, ...) create what they need on first write.
    """
    if is_url(root):
        return f"{str(root).rstrip('/')}/{name}"
    location = (Path(root) / name).resolve()
    location.mkdir(parents=True, exist_ok=True)
    return location.as_uri()
