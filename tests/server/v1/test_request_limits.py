"""Numbers no upstream can take are the caller's error (400), not the server's (500)."""

from __future__ import annotations

from tests.server.v1.conftest import Patchbay

HUGE = 2**64


async def test_max_tokens_beyond_64_bits_is_a_400_on_chat(patchbay: Patchbay) -> None:
    async with patchbay.client() as http:
        for field in ("max_tokens", "max_completion_tokens"):
            body = {"model": "default", "messages": [{"role": "user", "content": "hi"}], field: HUGE}
            r = await http.post("/v1/chat/completions", json=body)
            assert r.status_code == 400, r.text
            assert r.json()["error"]["param"] == field


async def test_max_tokens_beyond_64_bits_is_a_400_on_messages(patchbay: Patchbay) -> None:
    async with patchbay.client() as http:
        body = {"model": "default", "max_tokens": HUGE, "messages": [{"role": "user", "content": "hi"}]}
        r = await http.post("/v1/messages", json=body)
    assert r.status_code == 400, r.text
    assert r.json()["type"] == "error" and r.json()["error"]["type"] == "invalid_request_error"
    assert "max_tokens" in r.json()["error"]["message"]
