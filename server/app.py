"""The FastAPI app factory."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from foundation import tracing
from server.activity.middleware import RequestLogMiddleware
from server.admin import access as admin_access
from server.admin import activity as admin_activity
from server.admin import billing as admin_billing
from server.admin import budgets as admin_budgets
from server.admin import catalog as admin_catalog
from server.admin import config_history as admin_config_history
from server.admin import conformance as admin_conformance
from server.admin import connections as admin_connections
from server.admin import flags as admin_flags
from server.admin import orgs as admin_orgs
from server.admin import plans as admin_plans
from server.admin import platform as admin_platform
from server.admin import routing_preview as admin_routing_preview
from server.admin import signin
from server.admin.auth import AdminGate, Refused
from server.body_limit import BodyLimit
from server.errors import REQUEST_ERRORS, error_response, request_error_handler, with_request_id
from server.health import router as health_router
from server.hot_path import HOT_ENDPOINTS, PatchbayApp
from server.metrics import learn_routes
from server.metrics import router as metrics_router
from server.middleware import RequestIdMiddleware
from server.payments import routes as payments
from server.realtime.endpoint import router as realtime_router
from server.realtime.runtime import warn_if_whisper_missing
from server.realtime.twilio import router as twilio_router
from server.realtime.twilio_webhook import router as twilio_webhook_router
from server.services import Services
from server.settings import Settings
from server.ui import mount_ui
from server.v1 import ROUTES as V1_ROUTES
from server.v1.audio import router as audio_router
from server.voice_sdk import mount_sdk

log = logging.getLogger("patchbay.server")

YOUNG_GC_THRESHOLD = 7000
"""Allocations between two collections of the young generation while serving (CPython: 700).

At 700 a worker under load collected every ~25 requests, each time walking the objects of every
request in flight (and promoting them, so older generations filled and were walked too): 0.1-0.2
ms of CPU per request, more in lost cache. Each young collection now walks a few thousand
objects (~5 ms), ten times less often (docs/performance.md, 2026-12-02 evening)."""

MIDDLE_GC_THRESHOLD = 1
"""Young collections between two collections of the middle generation while serving (CPython: 10).

A collection of the middle generation walks every object that survived the young collections
since the last one: at ten, with `YOUNG_GC_THRESHOLD`, up to ~70,000 objects in a voice worker
whose sessions had just opened, a 30-50 ms pause that made frames late. At one it runs on every
second young collection and walks a few thousand (~4 ms); each object is still walked once there
before it is promoted, so the total work is the same and chat's CPU per request did not move
(docs/performance.md, "The middle generation's pause", 2026-12-03)."""


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail: Any = exc.detail
    if isinstance(detail, dict) and "message" in detail:
        return JSONResponse(
            {"error": with_request_id(detail)}, status_code=exc.status_code, headers=exc.headers
        )
    return error_response(exc.status_code, "http_error", str(detail), headers=exc.headers)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
    message = (
        f"{where}: {first.get('msg', 'invalid request')}"
        if where
        else str(first.get("msg", "invalid request"))
    )
    return JSONResponse(
        {"error": with_request_id({"type": "invalid_request", "message": message, "param": where or None})},
        status_code=400,
    )


async def _refused(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Refused)
    return error_response(exc.status, exc.type, exc.message, headers=exc.headers)


async def _unhandled(_request: Request, exc: Exception) -> JSONResponse:
    # The message is not echoed: it may quote upstream text. The request id ties it to the log.
    log.error("unhandled error", exc_info=(type(exc), exc, None))
    return error_response(500, "server_error", "internal error; see the server log for this request id")


def create_app(
    settings: Settings, *, services: Services | None = None, migrate: bool = False, freeze_gc: bool = False
) -> FastAPI:
    """Build the app. `migrate=True` applies migrations at start-up; `freeze_gc=True` moves the
    start-up objects out of the garbage collector's sight and collects the young generation
    less often (`YOUNG_GC_THRESHOLD`, `MIDDLE_GC_THRESHOLD`; what `patchbay serve` does)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.otel_endpoint:
            # Per worker process, after the fork: the exporter's batching thread is its own.
            tracing.enable(tracing.otlp_exporter(settings.otel_endpoint), ratio=settings.otel_sample_ratio)
        svc = services or Services.build(settings)
        if migrate:
            await svc.db.upgrade()
        await svc.start()
        app.state.services = svc
        if freeze_gc:
            # Everything built so far lives as long as the process: keep the collector off it.
            gc.collect()
            gc.freeze()
            gc.set_threshold(YOUNG_GC_THRESHOLD, MIDDLE_GC_THRESHOLD, gc.get_threshold()[2])
        log.info("patchbay started", extra={"fields": {"database": svc.db.engine.dialect.name}})
        warn_if_whisper_missing(settings)
        try:
            yield
        finally:
            await svc.aclose()
            log.info("patchbay stopped")
            if settings.otel_endpoint:
                tracing.disable()

    # Off by default (docs/security.md): Swagger UI loads its scripts from a CDN, and the schema
    # maps every admin route to anyone who asks.
    docs = settings.api_docs
    app = PatchbayApp(
        default_body_cap=settings.max_body_bytes,
        title="Patchbay",
        version="0.1.0",
        lifespan=lifespan,
        docs_url="/docs" if docs else None,
        openapi_url="/openapi.json" if docs else None,
        redoc_url=None,
        # FastAPI's own OpenTelemetry instrumentation stays off: Patchbay makes its spans itself
        # (foundation/tracing.py), and the check FastAPI would run on every request costs CPU.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    # The hot /v1 endpoints run through `app.hot_chain` (server.hot_path), the same layers minus
    # the admin gate; these serve every other request.
    app.add_middleware(RequestLogMiddleware)  # around the /v1 audio endpoints
    app.add_middleware(BodyLimit, default_cap=settings.max_body_bytes)
    app.add_middleware(AdminGate)  # outside BodyLimit: no token, no body read, whatever its size
    app.add_middleware(RequestIdMiddleware)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    for error_type in REQUEST_ERRORS:
        app.add_exception_handler(error_type, request_error_handler)
    app.add_exception_handler(Refused, _refused)
    app.add_exception_handler(Exception, _unhandled)
    app.include_router(health_router)
    app.include_router(metrics_router)
    app.include_router(admin_orgs.router)
    app.include_router(admin_budgets.router)
    app.include_router(admin_catalog.router)
    app.include_router(admin_access.router)
    app.include_router(signin.router)
    app.include_router(admin_connections.router)
    app.include_router(admin_conformance.router)
    app.include_router(admin_platform.router)
    app.include_router(admin_flags.router)
    app.include_router(admin_routing_preview.router)
    app.include_router(admin_config_history.router)
    app.include_router(admin_activity.router)
    app.include_router(admin_billing.router)
    app.include_router(admin_plans.router)
    app.include_router(payments.admin_router)
    app.include_router(payments.webhook_router)
    app.include_router(realtime_router)
    app.include_router(twilio_webhook_router)
    app.include_router(twilio_router)
    app.include_router(audio_router)
    app.router.routes.extend(V1_ROUTES)
    learn_routes(V1_ROUTES, unrouted=HOT_ENDPOINTS)
    mount_ui(app)
    mount_sdk(app)
    return app
