"""The FastAPI app over a ``PredictionService``: prediction, signal, health, readiness,
Prometheus metrics, model views and the token-guarded admin endpoints.

Access: admin endpoints need ``Authorization: Bearer <serving.admin_token>``; with no token
configured they refuse every call (403). Prediction endpoints need ``X-API-Key`` from
``serving.api_keys`` when that list is not empty. The client id that canary routing hashes is
``X-Client-Id``, else the API key, else the peer address.
"""

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, HTTPException, Request
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.concurrency import run_in_threadpool

from qlib_assets.serving.inputs import RequestError
from qlib_assets.serving.schemas import (
    CanaryRequest,
    DeployRequest,
    ModelsResponse,
    PredictRequest,
    PredictResponse,
    SignalResponse,
    SwitchRequest,
)
from qlib_assets.serving.service import PredictionService

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "The date is not a trading session."},
    401: {"description": "Missing or unknown API key."},
    409: {"description": "The session's features are missing (named in the detail)."},
    503: {"description": "No model is serving the spec yet."},
}
ADMIN_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or wrong admin token."},
    403: {"description": "Admin endpoints are disabled: no admin token is configured."},
}
ENDPOINTS = {"/v1/predict": "predict", "/v1/signal": "signal"}


def create_app(service: PredictionService) -> FastAPI:
    config = service.config
    bearer = HTTPBearer(auto_error=False)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service.start()
        try:
            yield
        finally:
            service.close()

    app = FastAPI(
        title="qlib-assets prediction service",
        version="1",
        description=f"Scores of the models behind the `{service.alias}` alias ({service.env}).",
        lifespan=lifespan,
    )

    def client_id(request: Request) -> str:
        return (
            request.headers.get("x-client-id")
            or request.headers.get("x-api-key")
            or (request.client.host if request.client else "unknown")
        )

    def api_key(x_api_key: Annotated[str | None, Header()] = None) -> None:
        if config.api_keys and not any(
            x_api_key is not None and secrets.compare_digest(x_api_key, k) for k in config.api_keys
        ):
            raise HTTPException(401, "a valid X-API-Key header is required")

    def admin(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> None:
        if not config.admin_token:
            raise HTTPException(403, "admin endpoints are disabled: serving.admin_token is unset")
        if credentials is None or not secrets.compare_digest(
            credentials.credentials.encode(), config.admin_token.encode()
        ):
            raise HTTPException(
                401, "a valid admin bearer token is required", {"WWW-Authenticate": "Bearer"}
            )

    @app.exception_handler(RequestError)
    async def refused(request: Request, exc: RequestError) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def malformed(request: Request, exc: RequestValidationError) -> Response:
        endpoint = next((n for p, n in ENDPOINTS.items() if request.url.path.startswith(p)), None)
        if endpoint is not None:
            service.reject(
                endpoint, client_id(request), await request.body(), 422, str(exc.errors())
            )
        return await request_validation_exception_handler(request, exc)

    @app.post(
        "/v1/predict",
        response_model=PredictResponse,
        responses=ERRORS,
        dependencies=[Depends(api_key)],
        summary="Scores of instruments on a session, or of feature rows",
    )
    async def predict(body: PredictRequest, request: Request) -> PredictResponse:
        raw = await request.body()
        return await run_in_threadpool(service.predict, body, client_id(request), raw)

    @app.get(
        "/v1/signal/{day}",
        response_model=SignalResponse,
        responses=ERRORS,
        dependencies=[Depends(api_key)],
        summary="The ensemble signal of a session from the served models",
    )
    def signal(day: date, request: Request) -> SignalResponse:
        return service.signal(day, client_id(request))

    @app.get("/health", summary="Liveness")
    def health() -> dict[str, str]:
        return {"status": "ok", "env": service.env}

    @app.get("/ready", summary="Models loaded and verified", responses={503: {}})
    def ready() -> JSONResponse:
        ok, body = service.readiness()
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.get("/metrics", summary="Prometheus exposition")
    def metrics() -> Response:
        return Response(service.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/models", response_model=ModelsResponse, summary="What each slot holds")
    def models() -> ModelsResponse:
        return service.models()

    admin_deps = [Depends(admin)]

    @app.post("/admin/reload", dependencies=admin_deps, responses=ADMIN_ERRORS)
    def reload() -> ModelsResponse:
        """Re-read every alias and act on it, even if it has not moved."""
        service.sync(force=True)
        return service.models()

    @app.post("/admin/deploy", dependencies=admin_deps, responses=ADMIN_ERRORS)
    def deploy(body: DeployRequest) -> ModelsResponse:
        """Load a version into the idle slot, verify it and switch (stands until the alias
        moves)."""
        from qlib_assets.serving.verification import VerificationFailed

        try:
            service.deploy(body.spec, body.version, "admin deploy")
        except VerificationFailed as exc:
            raise RequestError(
                409, {"msg": str(exc), "problems": exc.problems, "evidence": exc.evidence}
            ) from exc
        return service.models()

    @app.post("/admin/switch", dependencies=admin_deps, responses=ADMIN_ERRORS)
    def switch(body: SwitchRequest) -> ModelsResponse:
        """Serve the other (warm) slot: an instant rollback."""
        try:
            service.switch(body.spec)
        except LookupError as exc:
            raise RequestError(409, {"msg": str(exc)}) from exc
        return service.models()

    @app.post("/admin/canary", dependencies=admin_deps, responses=ADMIN_ERRORS)
    def canary_weight(body: CanaryRequest) -> ModelsResponse:
        """Change the share of clients routed to the running canary."""
        service.set_canary_weight(body.spec, body.weight)
        return service.models()

    return app
