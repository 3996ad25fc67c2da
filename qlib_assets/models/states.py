"""Lifecycle states and aliases of registered versions (cheap to import: the CLI's parser uses
them as choices, and `qlib-assets --help` must not import MLflow)."""

STATE_TAG = "lifecycle_state"
STATES = ("candidate", "validated", "staging", "production", "archived")
ALIASES = ("champion", "challenger", "canary")
