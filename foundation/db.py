"""The declarative base every package's tables hang off, small column helpers, and the plain
connections behind a session factory.

It lives on the ground floor so that each package can own its tables without importing
another package; `server/migrations` imports every package's `tables` module.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

from sqlalchemy import DateTime, MetaData
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

from foundation.random_ids import random_bytes

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

_ID_ALPHABET = b"0123456789abcdefghjkmnpqrstvwxyz"
_BYTE_TO_CHARACTER = bytes(_ID_ALPHABET[byte & 31] for byte in range(256))
"""A random byte's low five bits as a Crockford character: 256 is 8 x 32, so each of the 32
characters stands for exactly 8 byte values and a uniform byte gives a uniform character."""


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def new_id(prefix: str) -> str:
    """`prefix_` + 20 random Crockford-base32 characters (100 bits)."""
    # One draw of 20 bytes and one table lookup per byte (1.2 us an id), on every chat request and
    # voice turn: `base64.b32encode` is a Python loop in CPython 3.11 and took 5.4 us an id.
    return prefix + "_" + random_bytes(20).translate(_BYTE_TO_CHARACTER).decode("ascii")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def connections_of(sessions: async_sessionmaker[AsyncSession]) -> Callable[[], AsyncConnection]:
    """Connections to the engine `sessions` are bound to (same pool, same execution options),
    for reads on a request's path that run only Core statements: an ORM session around one
    such statement costs about a third as much CPU again (its transaction, then a second
    rollback when it closes)."""
    bind = sessions.kw.get("bind")
    if not isinstance(bind, AsyncEngine):
        raise TypeError("the session factory is not bound to an engine")
    return bind.connect


T = TypeVar("T")


async def read_reconnecting(
    connect: Callable[[], AsyncConnection], read: Callable[[AsyncConnection], Awaitable[T]]
) -> T:
    """`read(conn)` on a connection from `connect`; run once more on a fresh connection when the
    first one turns out to have been closed by the server (a restart or a failover).

    The pool pings only connections that sat idle (`server.db.PING_AFTER_IDLE_SECONDS`), so a
    connection used a moment ago is not pinged and a restart since is found by the statement
    itself; SQLAlchemy then invalidates the pool, and the second try connects afresh. For reads
    only: running one twice is harmless."""
    try:
        async with connect() as conn:
            return await read(conn)
    except DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
    async with connect() as conn:
        return await read(conn)
