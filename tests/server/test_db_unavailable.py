"""Which exceptions mean "the database cannot be reached right now" (a 503), and which are bugs (a 500)."""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from server.db_unavailable import database_unavailable


def _wrapped(inner: BaseException, outer: BaseException) -> BaseException:
    try:
        try:
            raise inner
        except BaseException as exc:
            raise outer from exc
    except BaseException as caught:
        return caught


def test_unreachable_database_errors() -> None:
    assert database_unavailable(ConnectionRefusedError(111, "Connect call failed"))
    assert database_unavailable(OperationalError("SELECT 1", {}, Exception("server closed the connection")))
    invalidated = DBAPIError("SELECT 1", {}, Exception("gone"), connection_invalidated=True)
    assert database_unavailable(invalidated)
    assert database_unavailable(_wrapped(ConnectionResetError(), RuntimeError("while loading the key")))


def test_bugs_and_request_errors_are_not_outages() -> None:
    assert not database_unavailable(RuntimeError("bug"))
    assert not database_unavailable(IntegrityError("INSERT", {}, Exception("duplicate key")))
    assert not database_unavailable(DBAPIError("SELECT 1", {}, Exception("syntax error")))
