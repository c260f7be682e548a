"""The `request_log` table: what each /v1 and realtime request of an org did.

One row per request (a chat completion, a message, a transcription or speech request, a
realtime session, a realtime turn), written behind the request by `server.activity.recorder`.
It holds ids, the model asked, the route trace, status, error type, latency and tokens; the
request's messages and the completion text only when the org turned content logging on
(`content_request`, `content_response`, each cut at 32 KiB). Rows older than the retention
setting are deleted by `server.activity.retention`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Float, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from foundation.db import Base, UTCDateTime, utcnow

LogId = BigInteger().with_variant(Integer(), "sqlite")
"""A 64-bit counter (SQLite: its rowid). Not a random `new_id` like other tables' ids: a log
row is written a thousand times a second and read by time, so the cheapest insert wins (no id
to draw, one B-tree less on SQLite, appends at the end of the index)."""


class RequestLogRow(Base):
    """One request. No key, no secret; content only with the org's content logging on."""

    __tablename__ = "request_log"

    id: Mapped[int] = mapped_column(LogId, primary_key=True, autoincrement=True)
    org_id: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    """When the request arrived."""
    request_id: Mapped[str | None] = mapped_column(String(64))
    """The HTTP request id (`x-patchbay-request-id`); for realtime, the session id."""
    turn_id: Mapped[str | None] = mapped_column(String(64))
    api_key_id: Mapped[str | None] = mapped_column(String(32))
    agent_id: Mapped[str | None] = mapped_column(String(32))
    surface: Mapped[str] = mapped_column(String(32))
    """`chat.completions`, `messages`, `audio.transcriptions`, `audio.speech`, `realtime.session`,
    `twilio.session`, `realtime.turn`."""
    model: Mapped[str | None] = mapped_column(String(255))
    """The model the caller asked for (`default`, a ref, an alias)."""
    intent: Mapped[str | None] = mapped_column(String(16))
    route: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    """The attempt trace (`routing.trace.AttemptTrace.to_dict`): every candidate, skipped, failed or served."""
    connection: Mapped[str | None] = mapped_column(String(100))
    """The serving connection (auth profile id, `openai:main`), or None when nothing served."""
    served_model: Mapped[str | None] = mapped_column(String(255))
    billing_source: Mapped[str | None] = mapped_column(String(16))
    status: Mapped[int] = mapped_column(Integer)
    """The HTTP status; for realtime, the status `/v1` gives the same outcome (200 served, 429 refused...)."""
    outcome: Mapped[str] = mapped_column(String(16))
    """ok | error (also a stream that failed after its 200) | cancelled (the caller went away first)."""
    error_type: Mapped[str | None] = mapped_column(String(64))
    """The error code the caller got (`rate_limit_exceeded`, `upstream_failed`, `model_not_found`...)."""
    error_class: Mapped[str | None] = mapped_column(String(32))
    """The provider error class of the last failed attempt (`rate_limit`, `server_error`...)."""
    latency_ms: Mapped[float | None] = mapped_column(Float)
    input_tokens: Mapped[int | None] = mapped_column(Integer)
    output_tokens: Mapped[int | None] = mapped_column(Integer)
    content_request: Mapped[str | None] = mapped_column(Text)
    """Content logging only: the request's messages (JSON) or text, cut at 32 KiB."""
    content_response: Mapped[str | None] = mapped_column(Text)
    """Content logging only: the completion text (or transcript), cut at 32 KiB."""

    __table_args__ = (
        Index("ix_request_log_org_created", "org_id", "created_at"),
        Index("ix_request_log_created", "created_at"),
    )
