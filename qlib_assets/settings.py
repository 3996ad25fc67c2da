"""The one settings object: paths, calendar, universe, validation thresholds, environment.

Read from environment variables prefixed ``QLIB_ASSETS_`` and, when ``QLIB_ASSETS_CONFIG``
names one, a YAML file. Environment variables win over the YAML file. ``QLIB_ASSETS_ENV``
(dev / staging / prod) also loads the environment's shipped settings file
(``qlib_assets/environments/<env>.yaml``), below both.
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

from qlib_assets.operations.config import OperationsSettings

CONFIG_ENV_VAR = "QLIB_ASSETS_CONFIG"
ENV_VAR = "QLIB_ASSETS_ENV"
ENVIRONMENTS_DIR = Path(__file__).parent / "environments"


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


class LandingSettings(BaseModel):
    """When a landing file counts as delivered."""

    settle_seconds: float = Field(
        5.0,
        description="A file is ingested once unchanged (size, modification and status-change "
        "time) for this long; a file still being written is left alone until then.",
    )
    completion_marker: str | None = Field(
        None,
        description="If set, e.g. '.done': a file is ingested only once '<its name><marker>' "
        "exists beside it (for writers that signal completion).",
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


class AutomationSettings(BaseModel):
    """The daily chain's Declarative Automation (see README, "The daily loop")."""

    enabled: bool = Field(
        True,
        description="Start the automation-condition and rolling-retrain sensors running; false "
        "leaves every asset to be launched by hand.",
    )
    interval_seconds: int = Field(
        5, ge=1, description="How often the automation conditions are evaluated."
    )


class ServingSettings(BaseModel):
    """The prediction service (``qlib-assets serve``) and its deployment pipeline."""

    host: str = Field("127.0.0.1", description="Interface the service binds.")
    ports: dict[str, int] = Field(
        default_factory=lambda: {"dev": 8015, "staging": 8115, "prod": 8215},
        description="Port of the service per environment (staging and prod run side by side).",
    )
    aliases: dict[str, str] = Field(
        default_factory=lambda: {"dev": "champion", "staging": "challenger", "prod": "champion"},
        description="Registry alias each environment's service follows.",
    )
    specs: list[str] = Field(
        default_factory=list,
        description="Specs served; empty: every platform spec whose alias is set.",
    )
    poll_seconds: float = Field(2.0, description="How often the service re-reads the aliases.")
    admin_token: str | None = Field(
        None,
        description="Bearer token of the admin endpoints; without one every admin call is refused.",
    )
    api_keys: list[str] = Field(
        default_factory=list,
        description="Keys accepted in X-API-Key on prediction endpoints; empty: open.",
    )
    flush_seconds: float = Field(
        0.25, description="Request log: the writer appends what is buffered at least this often."
    )
    flush_rows: int = Field(2000, description="Request log: or as soon as this many are buffered.")
    p99_ms: float = Field(250.0, description="Latency bound (p99) of a prediction request.")
    max_error_rate: float = Field(0.01, description="Share of 5xx answers that is a breach.")
    canary_weight: float = Field(
        10.0, description="Percent of clients (sticky by client-id hash) routed to the canary."
    )
    canary_min_requests: int = Field(200, description="Canary analysis after this many ...")
    canary_max_minutes: float = Field(30.0, description="... or this many minutes.")
    canary_p99_ratio: float = Field(1.5, description="Canary p99 may be this x the champion's.")
    canary_max_ks: float = Field(
        0.6,
        description="Largest Kolmogorov-Smirnov distance of canary vs champion scores: catches "
        "collapsed or diverged outputs; two adjacent rolling windows differ by ~0.5.",
    )
    strategy: Literal["blue-green", "canary"] = Field(
        "blue-green", description="How the deployment pipeline moves a version to prod."
    )
    perf_rate: float = Field(50.0, description="Performance test: requests per second ...")
    perf_seconds: float = Field(5.0, description="... for this long, against staging.")

    def port(self, env: str) -> int:
        return self.ports[env]

    def alias(self, env: str) -> str:
        return self.aliases[env]


class LifecycleSettings(BaseModel):
    """Gates, promotion policies, approvals, fallback and rollback of model versions."""

    default_policy: Literal["rolling", "shadow", "manual"] = Field(
        "rolling",
        description="How a validated version takes over: rolling (at once, Qlib's behaviour), "
        "shadow (after a shadow test against the champion) or manual (only by a command).",
    )
    policies: dict[str, Literal["rolling", "shadow", "manual"]] = Field(
        default_factory=dict, description="Spec name -> promotion policy, overriding the default."
    )
    require_approval: bool | None = Field(
        None,
        description="A move to production needs a recorded approval; default: only in prod.",
    )
    ic_floor: float = Field(0.0, description="Gate: the version's valid IC must be >= this.")
    max_score_seconds: float = Field(
        30.0, description="Gate: scoring the fixed sample must take at most this long."
    )
    sample_sessions: int = Field(3, ge=1, description="Sessions in a spec's fixed scoring sample.")
    sample_instruments: int = Field(200, ge=2, description="Instruments per sample session.")
    shadow_sessions: int = Field(
        20, ge=5, description="Shadow sessions with labels before a shadow decision."
    )
    shadow_margin: float = Field(
        0.0, ge=0.0, description="The challenger may be worse by at most this daily IC."
    )
    shadow_alpha: float = Field(0.05, description="Level of the one-sided shadow test.")
    hac_lags: int | None = Field(
        None, description="Newey-West lags of the shadow test; default: label horizon - 1."
    )
    rollback_sessions: int = Field(
        20, ge=1, description="A new champion is watched this many sessions for a rollback."
    )
    rollback_window: int = Field(
        10, ge=2, description="Sessions of the realized IC compared to the decay bound."
    )
    keep_production: int = Field(
        2, ge=2, description="Production versions kept (the champion and its fallbacks)."
    )


class VersionSettings(BaseModel):
    """Retention of superseded lake partition versions (current versions are always kept)."""

    keep_days: float | None = Field(
        None, description="Prune versions superseded more than this many days ago; None: never."
    )
    max_bytes: int | None = Field(
        None,
        description="Bound on the bytes held only by superseded versions; the oldest "
        "superseded go first. None: no bound.",
    )


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
    landing: LandingSettings = Field(default_factory=LandingSettings)
    monitoring: MonitoringSettings = Field(default_factory=MonitoringSettings)
    automation: AutomationSettings = Field(default_factory=AutomationSettings)
    serving: ServingSettings = Field(default_factory=ServingSettings)
    lifecycle: LifecycleSettings = Field(default_factory=LifecycleSettings)
    operations: OperationsSettings = Field(default_factory=OperationsSettings)
    versions: VersionSettings = Field(default_factory=VersionSettings)
    indicator_params: dict[str, Any] = Field(
        default_factory=dict,
        description="Indicator family -> parameter overrides, a list of them, or null to drop "
        "(see qlib_assets.features.indicators.catalog.build_catalog).",
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
        environment = os.environ.get(ENV_VAR)
        if environment:
            # The shipped defaults of the environment, below everything set explicitly.
            path = ENVIRONMENTS_DIR / f"{environment}.yaml"
            if not path.is_file():
                known = sorted(p.stem for p in ENVIRONMENTS_DIR.glob("*.yaml"))
                raise FileNotFoundError(
                    f"{ENV_VAR}={environment}: no such environment; use {known}"
                )
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
        return self.operations.lake_dir or self.root / "lake"

    @property
    def quarantine_dir(self) -> Path:
        return self.root / "quarantine"

    @property
    def qlib_data_dir(self) -> Path:
        return self.operations.qlib_provider_dir or self.root / "qlib_data"

    @property
    def dagster_home(self) -> Path:
        return self.root / "dagster"

    @property
    def mlflow_artifacts(self) -> Path | str:
        return self.operations.mlflow_artifact_root or self.root / "mlartifacts"

    @property
    def serving_dir(self) -> Path:
        return self.root / "serving" / self.env

    @property
    def mlflow_uri(self) -> str:
        return self.operations.mlflow_tracking_uri or f"sqlite:///{self.root / 'mlflow.db'}"

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
