"""Error bodies for the admin API and health endpoints: `{"error": {"type", "message"}}`."""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import Request
from fastapi.responses import JSONResponse

from server.accounts import AccountError, ConflictError, NotFoundError

_STATUS = {NotFoundError: 404, ConflictError: 409}


def error_response(status: int, type_: str, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"type": type_, "message": message}}, status_code=status, headers=headers)


async def account_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AccountError)
    return error_response(_STATUS.get(type(exc), 400), exc.code, str(exc))
