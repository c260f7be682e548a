"""The predecessor's token-billing rows, parsed: one JSON object a line, validated before any write.

A line is `{"orgId", "requestId", "model", "promptTokens", "completionTokens", "costUsd", "ts"}`.
`costUsd` is read as an exact decimal (a JSON number is never a float here) and becomes integer
micro-USD through `billing.money.parse_usd`: negative costs and costs finer than a micro-dollar
are refused, not rounded. `ts` is an ISO 8601 time with a zone, or integer milliseconds since the
epoch. Every problem is reported with its line number; the values of a line are not echoed.
Pure: no I/O. The ledger side is `billing.ledger_history`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from billing.ledger_types import legacy_key
from billing.money import AmountError, parse_usd

FIELDS = ("orgId", "requestId", "model", "promptTokens", "completionTokens", "costUsd", "ts")
_REQUEST_ID = re.compile(r"^[\x21-\x7e]{1,120}$")
"""Printable ASCII without spaces, short enough that `legacy:<id>` is an idempotency key."""
_MAX_TOKENS = 2**31 - 1
_MAX_MS = 253_402_300_799_999
"""9999-12-31T23:59:59.999Z."""


@dataclass(frozen=True, slots=True)
class LegacyRow:
    """One valid line: what the predecessor charged `org_id` for `request_id`."""

    line: int
    org_id: str
    request_id: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    cost: int
    """micro-USD, exact."""
    at: datetime
    """When the predecessor charged it (UTC)."""

    @property
    def key(self) -> str:
        return legacy_key(self.request_id)


@dataclass(frozen=True, slots=True)
class LineError:
    line: int
    message: str


@dataclass(frozen=True, slots=True)
class Duplicate:
    """A line that repeats an earlier line of the file exactly (same org and request id)."""

    line: int
    first_line: int
    org_id: str
    request_id: str


@dataclass
class ParsedFile:
    rows: list[LegacyRow] = field(default_factory=list)
    duplicates: list[Duplicate] = field(default_factory=list)
    errors: list[LineError] = field(default_factory=list)


def parse_lines(lines: Iterable[str], *, now: datetime) -> ParsedFile:
    """Validate every line (blank lines are skipped). A request id seen twice for one org is a
    `Duplicate` when the lines agree, an error when they differ. `ts` after `now` is an error."""
    parsed = ParsedFile()
    seen: dict[tuple[str, str], LegacyRow] = {}
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            row = parse_line(number, raw, now=now)
        except ValueError as exc:
            parsed.errors.append(LineError(number, str(exc)))
            continue
        first = seen.get((row.org_id, row.request_id))
        if first is None:
            seen[(row.org_id, row.request_id)] = row
            parsed.rows.append(row)
        elif _same(first, row):
            parsed.duplicates.append(Duplicate(number, first.line, row.org_id, row.request_id))
        else:
            parsed.errors.append(
                LineError(
                    number,
                    f"requestId {row.request_id!r} of org {row.org_id!r} is on line {first.line} with other values",
                )
            )
    return parsed


def parse_line(number: int, raw: str, *, now: datetime) -> LegacyRow:
    """One line as a `LegacyRow`; `ValueError` says what is wrong and how to fix it."""
    try:
        doc = json.loads(raw, parse_float=Decimal, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(doc, dict):
        raise ValueError("expected a JSON object")
    missing = [name for name in FIELDS if doc.get(name) is None]
    if missing:
        raise ValueError("missing field(s): " + ", ".join(missing))
    request_id = doc["requestId"]
    if not isinstance(request_id, str) or not _REQUEST_ID.match(request_id):
        raise ValueError("requestId must be 1 to 120 printable ASCII characters without spaces")
    return LegacyRow(
        line=number,
        org_id=_text(doc, "orgId", 32),
        request_id=request_id,
        model=_text(doc, "model", 255),
        prompt_tokens=_tokens(doc, "promptTokens"),
        completion_tokens=_tokens(doc, "completionTokens"),
        cost=_cost(doc["costUsd"]),
        at=_time(doc["ts"], now),
    )


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


def _same(a: LegacyRow, b: LegacyRow) -> bool:
    return (a.model, a.prompt_tokens, a.completion_tokens, a.cost, a.at) == (
        b.model,
        b.prompt_tokens,
        b.completion_tokens,
        b.cost,
        b.at,
    )


def _text(doc: dict[str, Any], name: str, longest: int) -> str:
    value = doc[name]
    if not isinstance(value, str) or not value.strip() or len(value) > longest:
        raise ValueError(f"{name} must be a non-empty string of at most {longest} characters")
    return value.strip()


def _tokens(doc: dict[str, Any], name: str) -> int:
    value = doc[name]
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_TOKENS:
        raise ValueError(f"{name} must be a whole number of tokens, 0 or more")
    return value


def _cost(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise ValueError("costUsd must be a decimal number of USD (a JSON number or string)")
    try:
        return parse_usd(value, param="costUsd")
    except AmountError as exc:
        raise ValueError(str(exc)) from None


def _time(value: Any, now: datetime) -> datetime:
    if isinstance(value, bool):
        raise ValueError("ts must be an ISO 8601 time with a zone or integer milliseconds since the epoch")
    if isinstance(value, int):
        if not 0 <= value <= _MAX_MS:
            raise ValueError("ts in milliseconds since the epoch is out of range")
        seconds, millis = divmod(value, 1000)
        at = datetime.fromtimestamp(seconds, tz=UTC).replace(microsecond=millis * 1000)
    elif isinstance(value, str):
        try:
            at = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError("ts must be an ISO 8601 time such as 2026-05-01T12:00:00Z") from None
        if at.tzinfo is None:
            raise ValueError("ts has no time zone; add Z or an offset such as +02:00")
        at = at.astimezone(UTC)
    else:
        raise ValueError("ts must be an ISO 8601 time with a zone or integer milliseconds since the epoch")
    if at > now:
        raise ValueError("ts is in the future")
    return at
