"""Header values built from caller-supplied text stay single-line printable ASCII."""

from __future__ import annotations

from server.v1.asgi import _latin1


def test_header_values_cannot_break_the_response_head() -> None:
    assert _latin1("openai:main/gpt-4o=served") == b"openai:main/gpt-4o=served"
    assert _latin1("x/evil\r\nset-cookie: a=b") == b"x/evil??set-cookie: a=b"
    assert _latin1("mod\u00e8le") == b"mod?le"
