"""`GET /metrics`: the Prometheus exposition, for the operator token only, summed over workers.

The metrics themselves are defined in `foundation.metrics`. Here: the endpoint (Bearer
operator token, 401 otherwise), the route-template label of a request (never its raw path),
and the multiprocess directory `patchbay serve` prepares before its workers start and
tidies when one dies.
"""

from __future__ import annotations

import asyncio
import hmac
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.routing import BaseRoute
from starlette.types import Scope

from foundation.metrics import observe_http
from server.errors import error_response
from server.services import Services

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
router = APIRouter()
_by_endpoint: dict[object, str] = {}
_own_template: set[str] = set()
"""Paths served without route matching (`server.hot_path`): the path is the template."""


def learn_routes(routes: Iterable[BaseRoute], *, unrouted: Iterable[str] = ()) -> None:
    """Remember each plain Starlette route's template by its endpoint: FastAPI's routes put
    themselves in the scope (`scope["route"]`), plain ones (`server.v1.ROUTES`) only their endpoint.
    `unrouted` paths reach their endpoint with neither, so each is its own template."""
    _own_template.update(unrouted)
    for route in routes:
        endpoint, path = getattr(route, "endpoint", None), getattr(route, "path", None)
        if endpoint is not None and isinstance(path, str):
            _by_endpoint.setdefault(endpoint, path)


def route_template(scope: Scope) -> str:
    """The matched route's template (`/admin/v1/orgs/{org_id}`), or a fixed family for requests
    answered before routing (the admin gate's 401s, body limits) or matching nothing."""
    route = scope.get("route")
    if route is not None:
        return str(getattr(route, "path", "unmatched")) or "unmatched"
    endpoint = scope.get("endpoint")
    if endpoint is not None and (known := _by_endpoint.get(endpoint)) is not None:
        return known
    path: str = scope.get("path", "")
    if path in _own_template:
        return path
    if path.startswith("/admin/"):
        return "/admin/*"
    if path.startswith("/v1/"):
        return "/v1/*"
    return "unmatched"


def observe_request(scope: Scope, status: int, seconds: float) -> None:
    observe_http(scope["method"], route_template(scope), status, seconds)


def prepare_multiprocess_dir(data_dir: Path) -> Path:
    """An empty `<data dir>/metrics` in `PROMETHEUS_MULTIPROC_DIR`, for the workers to inherit.

    Emptied at every start: a previous run's files would add its counts to this run's."""
    path = (data_dir / "metrics").resolve()
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    os.environ[MULTIPROC_ENV] = str(path)
    return path


def worker_exited(pid: int | None) -> None:
    """Drop a dead worker's live gauges (its counters stay in the sums)."""
    if pid is not None and os.environ.get(MULTIPROC_ENV):
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def _exposition() -> bytes:
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    services: Services = request.app.state.services
    scheme, _, presented = (request.headers.get("authorization") or "").partition(" ")
    expected = services.admin_token.get_secret_value().encode() if services.admin_token else b""
    if not (
        expected and scheme.lower() == "bearer" and hmac.compare_digest(presented.strip().encode(), expected)
    ):
        return error_response(
            401,
            "unauthorized",
            "/metrics needs the operator token (PATCHBAY_ADMIN_TOKEN) as `Authorization: Bearer`",
            headers={"www-authenticate": "Bearer"},
        )
    # Several workers: reading their files is blocking I/O, off the event loop.
    return Response(await asyncio.to_thread(_exposition), media_type=CONTENT_TYPE_LATEST)
