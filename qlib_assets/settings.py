"""The one settings object: paths, calendar, universe, validation thresholds, environment.

Read from environment variables prefixed ``QLIB_ASSETS_`` and, when ``QLIB_ASSETS_CONFIG``
names one, a YAML file. Environment variables win over the YAML file.
"""

import os
from datetime import date
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

CONFIG_ENV_VAR = "QLIB_ASSETS_CONFIG"


class ValidationSettings(BaseModel):
    """Thresholds of the raw-bar validation rules."""

    price_limit: float = Field(
        0.2,
        description="Largest allowed close-to-close move without a factor change "
        "(XSHG main board is 10%, STAR and ChiNext 20%).",
    )
    limit_tolerance: float = Field(
        0.005, description="Slack on the price limit for rounding of limit prices."
    )
    coverage_drop: float = Field(
        0.2,
        description="Soft warning when a session has this share fewer instruments "
        "than the previous session.",
    )
    instrument_pattern: str = Field(
        r"^[A-Z]{2}[0-9A-Z]{4,8}$",
        description="Regular expression an instrument code must match (Qlib style, e.g. SH600000).",
    )


class MonitoringSettings(BaseModel):
    """Drift and decay thresholds, and the retraining cool-down."""

    spec: str = Field(
        "lgbm_alpha158", description="Spec whose training window is the reference of feature drift."
    )
    method: str = Field("wasserstein", description="Evidently stat test, pinned.")
    threshold: float = Field(
        0.45, description="Drift threshold of every column when calibrate is off."
    )
    calibrate: bool = Field(
        True,
        description="Per-column thresholds from the reference window's own sessions "
        "(the 90th percentile of their scores x 2).",
    )
    alarm_share: float = Field(
        0.25, description="Share of drifted columns that flags a session (investigate)."
    )
    retrain_share: float = Field(
        0.5,
        description="Share of drifted columns that asks for "
        "retraining (the drift_share check fails at it).",
    )
    decay_window: int = Field(20, description="Sessions of the rolling IC.")
    decay_ratio: float = Field(0.5, description="Breach below valid IC x this ratio ...")
    decay_floor: float = Field(0.0, description="... or below this floor, whichever is higher.")
    cooldown_days: int = Field(30, description="One retraining request per spec per cool-down.")


class Settings(BaseSettings):
    """Everything that differs between machines and environments."""

    model_config = SettingsConfigDict(
        env_prefix="QLIB_ASSETS_", env_nested_delimiter="__", extra="forbid"
    )

    home: Path = Field(Path(".qlib_assets"), description="Root of all state.")
    env: Literal["dev", "staging", "prod"] = "dev"
    calendar: str = Field("XSHG", description="exchange-calendars name of the exchange.")
    start_date: date = Field(
        date(2021, 1, 4),
        description="First trading-day partition; expanding model windows start here too.",
    )
    sqlite_synchronous: Literal["FULL", "NORMAL"] = Field(
        "NORMAL",
        description="SQLite synchronous pragma for the embedded Dagster, MLflow and audit "
        "databases (WAL mode: NORMAL survives process crashes, FULL also power loss).",
    )
    specs_dir: Path | None = Field(
        None,
        description="Folder of model spec YAML files; default: the specs shipped in the package. "
        "Tuning writes new spec versions here.",
    )
    audit_url: str | None = Field(
        None,
        description="SQLAlchemy URL of the registry audit table; default SQLite under home.",
    )
    column_aliases: dict[str, str] = Field(
        default_factory=dict,
        description="Landing column name -> canonical column name, e.g. {'code': 'instrument'}.",
    )
    validation: ValidationSettings = Field(default_factory=ValidationSettings)
    monitoring: MonitoringSettings = Field(default_factory=MonitoringSettings)
    indicator_params: dict[str, Any] = Field(
        default_factory=dict,
        description="Indicator family -> parameter overrides, a list of them, or null to drop "
        "(see qlib_assets.features.indicator_catalog.build_catalog).",
    )
    custom_indicators: dict[str, str] = Field(
        default_factory=dict,
        description="Name -> Qlib expression, or 'polars:' + a polars expression; added to "
        "the indicators asset.",
    )
    custom_factors: dict[str, str] = Field(
        default_factory=dict,
        description="Name -> Qlib expression; added to the alpha158 asset after Qlib's 158.",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get(CONFIG_ENV_VAR)
        if config_file:
            path = Path(config_file)
            if not path.is_file():
                raise FileNotFoundError(f"{CONFIG_ENV_VAR}={config_file}: no such settings file")
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=path))
        return tuple(sources)

    @cached_property
    def root(self) -> Path:
        return self.home.expanduser().resolve()

    @property
    def landing_dir(self) -> Path:
        return self.root / "landing"

    @property
    def lake_dir(self) -> Path:
        return self.root / "lake"

    @property
    def quarantine_dir(self) -> Path:
        return self.root / "quarantine"

    @property
    def qlib_data_dir(self) -> Path:
        return self.root / "qlib_data"

    @property
    def dagster_home(self) -> Path:
        return self.root / "dagster"

    @property
    def mlflow_artifacts(self) -> Path:
        return self.root / "mlartifacts"

    @property
    def mlflow_uri(self) -> str:
        return f"sqlite:///{self.root / 'mlflow.db'}"

    def ensure_dirs(self) -> None:
        for path in (
            self.landing_dir,
            self.lake_dir,
            self.quarantine_dir,
            self.qlib_data_dir,
            self.dagster_home,
        ):
            path.mkdir(parents=True, exist_ok=True)


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment (and the YAML file it names), with explicit overrides."""
    return Settings(**overrides)
