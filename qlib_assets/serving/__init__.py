"""The prediction service: FastAPI app, blue-green slots, canary routing, request log, metrics.

Nothing here is imported by the code location or the CLI at module import: fastapi, uvicorn and
mlflow load only when a service starts.
"""
