"""Error bodies for the admin API and health endpoints: `{"error": {"type", "message"}}`.

The packages' request errors carry a stable `code`; this maps codes to HTTP statuses.
"""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import Request
from fastapi.responses import JSONResponse

from providers.errors import RequestError
from routing.errors import BaseUrlRefusedError

REQUEST_ERRORS: tuple[type[Exception], ...] = (
    RequestError,
    BaseUrlRefusedError,
)
_STATUS_BY_CODE = {"not_found": 404, "conflict": 409}


def error_response(status: int, type_: str, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"type": type_, "message": message}}, status_code=status, headers=headers)


async def request_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    code = str(getattr(exc, "code", "invalid_request"))
    return error_response(_STATUS_BY_CODE.get(code, 400), code, str(exc))
