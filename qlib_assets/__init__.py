"""qlib-assets: a Dagster asset-graph data platform for Qlib models."""

__version__ = "0.1.0"
