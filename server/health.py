"""Liveness and readiness; /readyz also names the built-in voice engines in service."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from server.services import Services

router = APIRouter()
log = logging.getLogger("patchbay.health")


@router.get("/healthz", include_in_schema=False)
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", include_in_schema=False)
async def readyz(request: Request) -> JSONResponse:
    services: Services = request.app.state.services
    try:
        revision = await services.db.current_revision()
    except Exception as exc:
        log.warning("readiness: database unreachable", extra={"fields": {"error_type": type(exc).__name__}})
        return JSONResponse({"status": "unavailable", "database": "unreachable"}, status_code=503)
    if revision != services.expected_revision:
        return JSONResponse(
            {
                "status": "unavailable",
                "database": "ok",
                "migrations": {"current": revision, "expected": services.expected_revision},
            },
            status_code=503,
        )
    return JSONResponse(
        {
            "status": "ready",
            "database": "ok",
            "migrations": {"current": revision},
            "voice": services.voice.internal_engine_names(),
        }
    )
