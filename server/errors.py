"""Error bodies for the admin API and health endpoints: `{"error": {"type", "message", "param"?, "request_id"}}`.

The packages' request errors carry a stable `code`; this maps codes to HTTP statuses.
"""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import Request
from fastapi.responses import JSONResponse

from foundation.errors import RequestError
from routing.errors import BaseUrlRefusedError
from server.logs import request_id_var

REQUEST_ERRORS: tuple[type[Exception], ...] = (
    RequestError,
    BaseUrlRefusedError,
)
_STATUS_BY_CODE = {
    "not_found": 404,
    "conflict": 409,
    "forbidden": 403,
    "unauthorized": 401,
    "purchases_off": 409,
    "payments_error": 502,
    "connection_limit": 403,
}


def error_response(
    status: int,
    type_: str,
    message: str,
    headers: Mapping[str, str] | None = None,
    *,
    param: str | None = None,
) -> JSONResponse:
    error: dict[str, str] = {"type": type_, "message": message}
    if param is not None:
        error["param"] = param
    return JSONResponse({"error": with_request_id(error)}, status_code=status, headers=headers)


def with_request_id(error: Mapping[str, object]) -> dict[str, object]:
    """The error object with the request id the access log and `x-request-id` show."""
    rid = request_id_var.get()
    return {**error, "request_id": rid} if rid else dict(error)


async def request_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    code = str(getattr(exc, "code", "invalid_request"))
    return error_response(_STATUS_BY_CODE.get(code, 400), code, str(exc), param=getattr(exc, "param", None))
