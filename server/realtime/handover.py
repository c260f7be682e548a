"""A phone call carried over a drain: its conversation handed from a worker that stops to the
next media stream of the same call, wherever that stream lands (docs/voice.md, "Phone calls
(Twilio)", and docs/operations.md, "Stopping and rolling updates").

The webhook's TwiML ends with a `<Redirect>` back to the webhook naming a handover id (128
random bits), which the media stream also gets as its `handover` parameter. When the worker
serving the stream drains, the stream waits for the call's first quiet moment, writes the
handover (the key, org and agent it serves, the model, the stream's own parameters and the
conversation so far) to `voice_handovers`, and closes. Twilio then runs the rest of the TwiML:
the redirect reaches a worker that stays, which answers a new `<Connect><Stream>` for the same
key (a fresh token) with `resume=<id>`. That stream takes the row, deleting it, and its session
starts with the conversation in it.

A stream whose socket closes without Twilio's `stop` (a dropped connection, the call still up)
writes its handover the same way at once, so the redirect that follows resumes it. While a call
lasts, its row is also kept current as a checkpoint (`server.realtime.call_checkpoint`), so the
redirect after a worker that died finds the conversation up to the last reply.

A row is only found with its call's SID, is used once, and lives `HANDOVER_SECONDS`; expired
rows are deleted by the next handover written and by the hourly sweep
(`server.activity.retention`). It holds the call's words whatever the org's content logging
says (docs/security.md), so it lives no longer than the redirect needs.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, delete, insert, or_, select

from server.accounts import Principal
from server.db import Database
from server.tables import VoiceHandover
from voice.errors import ClientError
from voice.history import HistoryError, Item
from voice.session import VoiceSession

HANDOVER_SECONDS = 120
"""How long a handover waits for the call's next stream (Twilio redirects within a second or two)."""


@dataclass(frozen=True, slots=True)
class Handover:
    id: str
    call_sid: str
    principal: Principal
    model: str | None
    parameters: dict[str, str]
    items: list[dict[str, Any]]


def new_handover_id() -> str:
    return secrets.token_urlsafe(16)


async def save(db: Database, handover: Handover, now: datetime) -> None:
    """Write the handover, replacing the call's checkpoint (`server.realtime.call_checkpoint`),
    to live `HANDOVER_SECONDS`; and delete every expired one."""
    expires_at = now + timedelta(seconds=HANDOVER_SECONDS)
    async with db.session() as session:
        await session.execute(
            delete(VoiceHandover).where(or_(VoiceHandover.expires_at < now, VoiceHandover.id == handover.id))
        )
        await session.execute(insert(VoiceHandover), [_row(handover, expires_at)])


async def save_checkpoints(db: Database, handovers: list[Handover], expires_at: datetime) -> None:
    """Write several calls' checkpoints in one transaction, each replacing its call's row."""
    async with db.session() as session:
        await session.execute(delete(VoiceHandover).where(VoiceHandover.id.in_([h.id for h in handovers])))
        await session.execute(insert(VoiceHandover), [_row(h, expires_at) for h in handovers])


def _row(handover: Handover, expires_at: datetime) -> dict[str, Any]:
    p = handover.principal
    return {
        "id": handover.id,
        "call_sid": handover.call_sid,
        "org_id": p.org_id,
        "key_id": p.key_id,
        "agent_id": p.agent_id,
        "model": handover.model,
        "parameters": handover.parameters,
        "items": handover.items,
        "expires_at": expires_at,
    }


async def find(
    db: Database, handover_id: str, call_sid: str, now: datetime, *, take: bool = False
) -> Handover | None:
    """The call's unexpired handover `handover_id`, or None; `take` deletes it (a stream's use)."""
    async with db.session() as session:
        row = await session.scalar(
            select(VoiceHandover).where(
                VoiceHandover.id == handover_id,
                VoiceHandover.call_sid == call_sid,
                VoiceHandover.expires_at >= now,
            )
        )
        if row is None:
            return None
        found = Handover(
            id=row.id,
            call_sid=row.call_sid,
            principal=Principal(key_id=row.key_id, org_id=row.org_id, agent_id=row.agent_id),
            model=row.model,
            parameters=dict(row.parameters),
            items=list(row.items),
        )
        if take:
            deleted = await session.execute(delete(VoiceHandover).where(VoiceHandover.id == row.id))
            if cast(CursorResult[Any], deleted).rowcount != 1:
                return None  # another stream took it first
    return found


async def discard(db: Database, handover_id: str) -> None:
    """Delete the row of `handover_id`, if there is one (a call that ended in order)."""
    async with db.session() as session:
        await session.execute(delete(VoiceHandover).where(VoiceHandover.id == handover_id))


def conversation_of(session: VoiceSession) -> list[dict[str, Any]]:
    """The session's conversation as plain values: what was said (transcripts and texts, as the
    caller heard them) and the function calls with their outputs."""
    return [_plain(item) for item in session.conversation.items if _kept(item)]


def _kept(item: Item) -> bool:
    return item.kind in ("function_call", "function_call_output") or (
        item.role in ("user", "assistant", "system") and bool(item.text)
    )


def _plain(item: Item) -> dict[str, Any]:
    plain: dict[str, Any] = {"kind": item.kind, "role": item.role, "text": item.text}
    if item.call_id is not None:
        plain["call_id"] = item.call_id
    if item.name is not None:
        plain["name"] = item.name
    return plain


def restore(session: VoiceSession, items: list[dict[str, Any]]) -> int:
    """Put a handed-over conversation into a new session, in order (spoken turns become text).
    An item the session refuses (a function output whose call the history no longer holds) is
    left out rather than losing the call; returns how many were."""
    left_out = 0
    for item in items:
        kind, text = item.get("kind"), str(item.get("text", ""))
        try:
            if kind == "function_call":
                session.add_function_call(str(item.get("name", "")), text, call_id=item.get("call_id"))
            elif kind == "function_call_output":
                session.add_function_output(str(item.get("call_id", "")), text)
            elif item.get("role") in ("user", "assistant", "system"):
                session.add_text(item["role"], text)
        except (ClientError, HistoryError):
            left_out += 1
    return left_out
