"""The HTTP contract of the service: request and response bodies (the OpenAPI schema)."""

import datetime as dt
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator


class FeatureRow(BaseModel):
    model_config = ConfigDict(extra="forbid")

    instrument: str = Field(min_length=1)
    date: dt.date
    features: dict[str, float | None] = Field(description="Feature name -> raw value.")


class PredictRequest(BaseModel):
    """Either a session and instruments (features read from the lake) or feature rows."""

    model_config = ConfigDict(extra="forbid")

    date: dt.date | None = Field(None, description="Session whose features are scored.")
    instruments: list[str] | None = Field(
        None, min_length=1, max_length=10_000, description="Instruments to score on ``date``."
    )
    spec: str | None = Field(None, description="Model spec; default: the service's first spec.")
    rows: list[FeatureRow] | None = Field(
        None, min_length=1, max_length=10_000, description="Feature rows to score instead."
    )

    @model_validator(mode="after")
    def _one_input(self) -> Self:
        by_session = self.date is not None or self.instruments is not None
        if by_session and self.rows is not None:
            raise ValueError("give either date and instruments, or rows, not both")
        if self.rows is None and (self.date is None or self.instruments is None):
            raise ValueError("date and instruments are both required (or give rows)")
        return self


class Score(BaseModel):
    instrument: str
    date: dt.date
    score: float | None
    reason: str | None = Field(None, description="Why the score is null.")


class PredictResponse(BaseModel):
    request_id: str
    spec: str
    version: str
    slot: str
    scores: list[Score]
    fallback: bool = Field(
        False, description="The canary failed on this request and the champion answered."
    )


class SignalRow(BaseModel):
    instrument: str
    signal: float


class SignalResponse(BaseModel):
    request_id: str
    date: dt.date
    versions: dict[str, str] = Field(description="Spec -> version that scored it.")
    signal: list[SignalRow]


class SlotView(BaseModel):
    slot: str
    version: str
    active: bool
    loaded_at: float
    load_seconds: float
    verification: dict[str, object]


class SpecView(BaseModel):
    spec: str
    alias: str
    alias_version: str | None
    slots: list[SlotView]
    canary: dict[str, object] | None
    last_error: str | None


class ModelsResponse(BaseModel):
    env: str
    specs: list[SpecView]


class DeployRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    spec: str
    version: str


class SwitchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    spec: str


class CanaryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    spec: str
    weight: float = Field(ge=0, le=100, description="Percent of clients routed to the canary.")
