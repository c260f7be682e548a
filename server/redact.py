"""Secrets out of log records: server API keys, realtime tokens and credential headers.

Our own log lines never carry a key (server/logs.py), but the libraries under us do: uvicorn
logs each WebSocket handshake's path with its query string at INFO (`?token=ek_...`, the
browser's realtime token), and at DEBUG the websockets protocol logs every handshake header
(`authorization: Bearer pb-...`). `RedactSecrets` rewrites a record's message, arguments and
`fields` before any handler sees it. It must sit on the logger that creates the record (a
logger's filters do not run for records propagated from its children), so `install` puts it
on those libraries' loggers, and `configure_logging` also on the output handler.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

MARKER = "[redacted]"
LIBRARY_LOGGERS = (
    "uvicorn",
    "uvicorn.error",
    "uvicorn.access",
    "websockets",
    "websockets.server",
    "websockets.client",
)
"""Loggers that create records carrying request lines and headers (uvicorn's websockets
protocols log through `uvicorn.error`; websockets' own server and client through theirs)."""
SECRET_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "api-key"}
)

_PATTERNS = (
    # A credential after its scheme: `Bearer pb-...`, `Basic dXNlcjpwYXNz`.
    (re.compile(r"\b(Bearer|Basic)\s+[^\s,;\"']+", re.IGNORECASE), rf"\1 {MARKER}"),
    # Server API keys (server/accounts.py), org admin tokens, sessions and invites
    # (server/access/) and realtime tokens (server/realtime/tokens.py), anywhere.
    (re.compile(r"\b(pb[tsi]?-)[A-Za-z0-9_\-]+"), rf"\1{MARKER}"),
    (re.compile(r"\bek_[A-Za-z0-9_.\-]+"), f"ek_{MARKER}"),
    # Query parameters that carry credentials, whatever their value looks like.
    (re.compile(r"([?&](?:token|key|api_key|access_token)=)[^&\s\"']*", re.IGNORECASE), rf"\1{MARKER}"),
)


_MAY_CARRY = re.compile(r"(?i:bearer|basic)|pb|ek_|[?&]")
"""What every pattern above needs to match (a superset): most text has none of it, and one search
costs a fraction of the four substitutions (the access line of every request passes here)."""


def redact(text: str) -> str:
    if _MAY_CARRY.search(text) is None:
        return text
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if value is None or isinstance(value, int | float):
        return value
    # An object logged with %s (a websockets frame or request): keep it unless its text leaks.
    text = str(value)
    cleaned = redact(text)
    return value if cleaned == text else cleaned


def _args(args: tuple[Any, ...]) -> tuple[Any, ...]:
    out = [_value(a) for a in args]
    # websockets logs each header as `("< %s: %s", name, value)`: a secret header's value goes
    # whole, whatever its format.
    for i, arg in enumerate(args[:-1]):
        if isinstance(arg, str) and arg.lower() in SECRET_HEADERS:
            out[i + 1] = MARKER
    return tuple(out)


def _nothing_to_redact(msg: str, fields: dict[str, Any] | None) -> bool:
    """True when no text of a record without arguments may carry a secret: one search over its
    message and text fields together (the access line of every request ends here). The texts are
    joined by a newline, which no alternative of `_MAY_CARRY` contains: no match spans two."""
    texts = [msg]
    if fields:
        for value in fields.values():
            if value.__class__ is str:
                texts.append(value)
            elif not (value is None or isinstance(value, int | float)):
                return False  # an object logged as text: the full pass below decides
    return _MAY_CARRY.search("\n".join(texts)) is None


class RedactSecrets(logging.Filter):
    """Rewrites secrets in a record's message, arguments and `fields`; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields = getattr(record, "fields", None)
        if (
            not record.args
            and isinstance(record.msg, str)
            and (fields is None or isinstance(fields, dict))
            and _nothing_to_redact(record.msg, fields)
        ):
            return True
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = _args(record.args)
        elif isinstance(record.args, Mapping):
            record.args = {k: _value(v) for k, v in record.args.items()}
        if isinstance(fields, dict):
            record.fields = {k: _value(v) for k, v in fields.items()}
        return True


_FILTER = RedactSecrets()


def install(names: tuple[str, ...] = LIBRARY_LOGGERS) -> RedactSecrets:
    """Put the redaction filter on `names` (idempotent); returns it, for a handler too."""
    for name in names:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
    return _FILTER
