"""Model specs, rolling windows, training through Qlib, MLflow tracking and the registry."""
