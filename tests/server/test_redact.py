"""The log redaction filter: pure rewriting of records, no logging configuration needed."""

from __future__ import annotations

import logging

from hypothesis import given
from hypothesis import strategies as st

from server.redact import MARKER, RedactSecrets, _value, redact


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


def test_an_access_line_with_a_secret_in_one_field_is_redacted() -> None:
    # Most records take the quick path (nothing to redact); one secret anywhere leaves it.
    line = record("request", method="GET", path="/v1/pb-leaked_key", status=404, client="10.0.0.1")
    clean = record("request", method="POST", path="/v1/chat/completions", status=200, duration_ms=1.5)
    fields = clean.fields
    assert RedactSecrets().filter(line) and RedactSecrets().filter(clean)
    assert line.fields["path"] == f"/v1/pb-{MARKER}" and line.fields["status"] == 404
    assert clean.fields is fields  # untouched, not copied

    class Frame:
        def __str__(self) -> str:
            return "frame with Bearer pb-in-an-object"

    obj = record("sent", frame=Frame())
    assert RedactSecrets().filter(obj) and obj.fields == {"frame": f"frame with Bearer {MARKER}"}


_PIECES = st.sampled_from(
    [
        "",
        "request",
        "/v1/chat/completions",
        "POST",
        "127.0.0.1",
        "pb",
        "pb-key1",
        "Bearer x",
        "BASIC y",
        "ek_tok",
        "?token=t",
        "&key=k",
        "\n",
        " ",
        "b",
        "p",
        "e",
        "k_",
    ]
)
_TEXT = st.lists(_PIECES, max_size=4).map("".join)
_FIELD = st.one_of(_TEXT, st.integers(), st.floats(allow_nan=False), st.none(), st.booleans())


@given(msg=_TEXT, fields=st.dictionaries(st.sampled_from("abcdef"), _FIELD, max_size=5))
def test_the_quick_path_redacts_exactly_what_the_full_pass_does(msg: str, fields: dict[str, object]) -> None:
    rec = record(msg, **fields)
    assert RedactSecrets().filter(rec)
    assert rec.msg == redact(msg)
    assert rec.fields == {k: _value(v) for k, v in fields.items()}
