"""Lifecycle states and aliases of registered versions (cheap to import: the CLI's parser uses
them as choices, and `qlib-assets --help` must not import MLflow)."""

STATE_TAG = "lifecycle_state"
STATES = (
    "candidate",
    "validated",
    "rejected",
    "staging",
    "production",
    "rolled_back",
    "archived",
)
ALIASES = ("champion", "challenger", "canary")
