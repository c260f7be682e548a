"""Whether an exception means the database cannot be reached right now.

The database down, restarting or shutting down, or a connection cut under a query: nothing is
wrong with the request or the code, and the same process recovers as soon as the database
answers (the pool checks a connection before lending it and replaces a dead one). Such a
request gets 503 `database_unavailable` with `retry-after`, not a 500, and the log line is a
warning with the error type only (docs/reliability.md#postgresql-restarted).
"""

from __future__ import annotations

import orjson
from asyncpg.exceptions import OperatorInterventionError, PostgresConnectionError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

RETRY_AFTER_SECONDS = 2

_UNREACHABLE: tuple[type[BaseException], ...] = (
    ConnectionError,  # refused or reset: the server is down or restarting
    PostgresConnectionError,
    OperatorInterventionError,  # "the database system is starting up / shutting down"
    OperationalError,
    InterfaceError,
    PoolTimeoutError,
)


def database_unavailable(exc: BaseException) -> bool:
    """True when `exc`, or what it wraps, says the database is unreachable."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, _UNREACHABLE):
            return True
        if isinstance(current, DBAPIError) and current.connection_invalidated:
            return True
        current = current.__cause__ or current.__context__
    return False


def unavailable_body(request_id: str | None) -> bytes:
    """The body of the 503: the admin API's error shape, with the request id."""
    error = {
        "type": "database_unavailable",
        "message": "the database cannot be reached right now; retry shortly",
    }
    if request_id:
        error["request_id"] = request_id
    return orjson.dumps({"error": error})
