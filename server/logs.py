"""Structured JSON logging with a per-request id.

Log text never carries prompts, transcripts, tool arguments or keys, since logs travel further
than the data they describe; records carry named fields in `extra={"fields": {...}}` that a
deployment can drop.
"""

from __future__ import annotations

import contextvars
import logging
import os
import sys
import time
from typing import Any

import orjson

from foundation import tracing
from server import redact

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "patchbay_request_id", default=None
)

_STD_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def __init__(self, static: dict[str, Any] | None = None) -> None:
        super().__init__()
        self._static = static or {}
        """Fields on every line of this process (a worker's `pid`)."""
        self._second = -1
        self._second_text = ""

    def format(self, record: logging.LogRecord) -> str:
        second = int(record.created)
        if second != self._second:  # one strftime a second, not one a line
            self._second = second
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        entry: dict[str, Any] = {
            "ts": f"{self._second_text}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            **self._static,
        }
        rid = request_id_var.get()
        if rid:
            entry["request_id"] = rid
            # None at once when tracing is off (foundation/tracing.py).
            tid = tracing.trace_id()
            if tid:
                entry["trace_id"] = tid
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info and record.exc_info[0] is not None:
            # Exception type and message only: tracebacks can carry local values.
            exc = record.exc_info[1]
            entry["error"] = f"{record.exc_info[0].__name__}: {exc}"
        return orjson.dumps(entry, default=str).decode()


def configure_logging(level: str = "INFO", stream: Any = None, *, worker: bool = False) -> None:
    """JSON lines on `stream` (stderr). `worker=True` adds the process id to every line, so
    the lines of several worker processes sharing one stderr can be told apart."""
    # Thread and process names, and the caller's file and line, are never logged; skipping
    # their lookup (a stack walk for the caller) cuts each record's cost.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter({"pid": os.getpid()} if worker else None))
    # Libraries log handshake headers and query strings; keys and tokens must not reach a line.
    handler.addFilter(redact.install())
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        lg = logging.getLogger(name)
        lg.handlers = []
        lg.propagate = True
    # Access lines are written by our own middleware with the request id.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # Alembic announces its context on every revision read (/readyz); keep only real changes.
    logging.getLogger("alembic.runtime.migration").setLevel(logging.WARNING)
    # ... and lists each plugin it sets up when first imported, which may be after this call.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
