"""Model specs, rolling windows, training through Qlib, MLflow tracking and the registry."""

import contextlib
import sys

# Qlib's model package prints optional-dependency notices (CatBoost) to stdout when imported,
# which would corrupt `--json` output; they go to stderr instead.
with contextlib.redirect_stdout(sys.stderr):
    import qlib.contrib.model  # noqa: F401
