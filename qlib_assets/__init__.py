"""qlib-assets: a Dagster asset-graph data platform for Qlib models."""

import os

__version__ = "0.1.0"

# Polars sets its bundled jemalloc to hand freed pages back to the kernel after 500 ms, then
# appends this variable, which wins. A factor run frees and allocates hundreds of column
# buffers within that time, and faulting them in again cost about a fifth of its wall time
# (benchmarks/alpha158.py: ~100k page faults per run, ~30k with this). Ten seconds, jemalloc's
# own default, keeps them for reuse. Read once, when polars is imported: importing qlib_assets
# first applies it, and a value already in the environment wins.
os.environ.setdefault("_RJEM_MALLOC_CONF", "dirty_decay_ms:10000")
