"""Asset-key names that more than one layer refers to (cheap to import: no library code)."""

MODEL_PREFIX = "model_"
SIGNAL = "signal"
FEATURE_DRIFT = "feature_drift"
PREDICTION_DRIFT = "prediction_drift"
PERFORMANCE_DECAY = "performance_decay"


def model_asset(spec_name: str) -> str:
    """The asset holding the rolling-window models of spec ``spec_name``."""
    return f"{MODEL_PREFIX}{spec_name}"


def model_spec_name(asset: str) -> str:
    """The spec whose models asset ``asset`` holds; the inverse of :func:`model_asset`."""
    if not asset.startswith(MODEL_PREFIX):
        raise ValueError(f"{asset} is not a model asset (its name must start with {MODEL_PREFIX})")
    return asset[len(MODEL_PREFIX) :]


def predictions_asset(spec_name: str) -> str:
    """The asset holding the daily scores of spec ``spec_name``."""
    return f"predictions_{spec_name}"


def shadow_asset(spec_name: str) -> str:
    """The asset holding the challenger's shadow scores of spec ``spec_name``."""
    return f"shadow_predictions_{spec_name}"


def explanations_asset(spec_name: str) -> str:
    """The asset holding the per-prediction contributions of spec ``spec_name``."""
    return f"explanations_{spec_name}"
