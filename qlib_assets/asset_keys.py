"""Asset-key names that more than one layer refers to."""

MODEL_PREFIX = "model_"


def model_asset(spec_name: str) -> str:
    """The asset holding the rolling-window models of spec ``spec_name``."""
    return f"{MODEL_PREFIX}{spec_name}"


def model_spec_name(asset: str) -> str:
    """The spec whose models asset ``asset`` holds; the inverse of :func:`model_asset`."""
    if not asset.startswith(MODEL_PREFIX):
        raise ValueError(f"{asset} is not a model asset (its name must start with {MODEL_PREFIX})")
    return asset[len(MODEL_PREFIX) :]
