"""Error bodies for the admin API and health endpoints: `{"error": {"type", "message", "param"?}}`.

The packages' request errors carry a stable `code`; this maps codes to HTTP statuses.
"""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import Request
from fastapi.responses import JSONResponse

from foundation.errors import RequestError
from routing.errors import BaseUrlRefusedError

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
    return JSONResponse({"error": error}, status_code=status, headers=headers)


async def request_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    code = str(getattr(exc, "code", "invalid_request"))
    return error_response(_STATUS_BY_CODE.get(code, 400), code, str(exc), param=getattr(exc, "param", None))
