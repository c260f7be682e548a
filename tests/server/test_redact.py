"""The log redaction filter: pure rewriting of records, no logging configuration needed."""

from __future__ import annotations

import logging

from server.redact import MARKER, RedactSecrets, redact


def record(msg: str, *args: object, **fields: object) -> logging.LogRecord:
    rec = logging.LogRecord("uvicorn.error", logging.INFO, __file__, 1, msg, args, None)
    rec.fields = fields
    return rec


def test_text_patterns() -> None:
    assert redact("Authorization: Bearer pb-abc_DEF-1") == f"Authorization: Bearer {MARKER}"
    assert redact('"WebSocket /v1/realtime?model=x&token=ek_a.b-c" [accepted]') == (
        f'"WebSocket /v1/realtime?model=x&token={MARKER}" [accepted]'
    )
    assert redact("key pb-secret in text") == f"key pb-{MARKER} in text"
    assert redact("/v1/realtime?model=default") == "/v1/realtime?model=default"


def test_the_quick_search_lets_no_pattern_through() -> None:
    """Text is only substituted when one search finds what some pattern needs: each kind of
    secret, in either case where its pattern ignores case, still hits that search."""
    for text in (
        "basic dXNlcjpwYXNz",
        "BEARER abc",
        "pbt-session1",
        "pbs-x",
        "pbi-invite",
        "ek_realtime.token",
        "/ws?TOKEN=abc",
        "/x&Access_Token=abc",
    ):
        assert MARKER in redact(text), text
    clean = "/v1/chat/completions"
    assert redact(clean) is clean


def test_record_message_args_and_fields() -> None:
    header = record("< %s: %s", "Authorization", "pb-raw-no-scheme")
    query = record(
        "%s - %s", "127.0.0.1", "/v1/realtime?token=ek_x", url="/v1/realtime?token=ek_x", status=101
    )
    for rec in (header, query):
        assert RedactSecrets().filter(rec) is True
    assert header.getMessage() == f"< Authorization: {MARKER}"
    assert "ek_x" not in query.getMessage() and query.fields == {
        "url": f"/v1/realtime?token={MARKER}",
        "status": 101,
    }


def test_access_credentials_are_redacted_whatever_their_kind() -> None:
    for prefix in ("pbt-", "pbs-", "pbi-"):
        assert redact(f"token {prefix}AbC_123-xyz used") == f"token {prefix}{MARKER} used"
