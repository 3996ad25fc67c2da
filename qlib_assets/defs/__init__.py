"""The Dagster layer: assets, checks, sensors, schedules and resources, one module per domain."""
