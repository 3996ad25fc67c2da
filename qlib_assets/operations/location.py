"""The code location as a function, for executors that rebuild the job in other processes.

Celery workers and Kubernetes step pods receive a pointer to this function, call it with their
own environment (QLIB_ASSETS_* variables or QLIB_ASSETS_CONFIG) and get the same asset graph.
"""

import dagster as dg


def code_location() -> dg.Definitions:
    from qlib_assets.defs.build import build_definitions
    from qlib_assets.settings import load_settings

    return build_definitions(load_settings())
