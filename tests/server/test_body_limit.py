"""Request bodies are capped while they stream: a declared length up front, a chunked body as counted."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx

from server.settings import Settings

CHUNK = 64 * 1024


class Body:
    """A chunked request body that counts how much of it the server pulled."""

    def __init__(self, chunks: int, chunk: bytes = b"x" * CHUNK) -> None:
        self.chunks, self.chunk, self.pulled = chunks, chunk, 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for _ in range(self.chunks):
            self.pulled += 1
            yield self.chunk


async def test_without_the_admin_token_a_huge_or_invalid_body_gets_401_unread(
    client: httpx.AsyncClient,
) -> None:
    huge = Body(chunks=16 * 1024)  # 1 GiB if it were read
    r = await client.post("/admin/v1/orgs", content=huge, headers={"content-type": "application/json"})
    assert r.status_code == 401 and r.json()["error"]["type"] == "unauthorized"
    assert huge.pulled == 0
    declared = Body(chunks=1, chunk=b"{not json")
    r = await client.post(
        "/admin/v1/orgs",
        content=declared,
        headers={"content-type": "application/json", "content-length": "9"},
    )
    assert r.status_code == 401 and declared.pulled == 0


async def test_an_admin_body_over_the_cap_gets_413_declared_or_chunked(
    client: httpx.AsyncClient, admin_headers: dict[str, str], settings: Settings
) -> None:
    cap = settings.max_body_bytes
    declared = Body(chunks=1)
    headers = {**admin_headers, "content-type": "application/json", "content-length": str(cap + 1)}
    r = await client.post("/admin/v1/orgs", content=declared, headers=headers)
    assert r.status_code == 413 and r.json()["error"]["type"] == "request_too_large"
    assert declared.pulled == 0

    chunked = Body(chunks=16 * 1024)
    r = await client.post(
        "/admin/v1/orgs", content=chunked, headers={**admin_headers, "content-type": "application/json"}
    )
    assert r.status_code == 413 and r.json()["error"]["type"] == "request_too_large"
    assert chunked.pulled == cap // CHUNK + 1  # stopped at the first chunk over the cap

    fine = await client.post("/admin/v1/orgs", json={"name": "acme"}, headers=admin_headers)
    assert fine.status_code == 201


async def test_each_surface_answers_413_in_its_own_format(client: httpx.AsyncClient) -> None:
    def declared(size: int) -> dict[str, str]:
        return {"content-type": "application/json", "content-length": str(size)}

    chat = await client.post("/v1/chat/completions", content=Body(1), headers=declared(33 * 1024 * 1024))
    assert chat.status_code == 413 and chat.json()["error"]["code"] == "request_too_large"
    messages = await client.post("/v1/messages", content=Body(1), headers=declared(33 * 1024 * 1024))
    assert messages.status_code == 413 and messages.json()["type"] == "error"
    assert messages.json()["error"]["type"] == "request_too_large"
    upload = await client.post(
        "/v1/audio/transcriptions", content=Body(1), headers=declared(26 * 1024 * 1024)
    )
    assert upload.status_code == 413 and upload.json()["error"]["code"] == "request_too_large"
    for small in ("/v1/audio/speech", "/v1/realtime/client_secrets"):
        r = await client.post(small, content=Body(1), headers=declared(64 * 1024 + 1))
        assert r.status_code == 413, small
        assert r.json()["error"]["code"] == "request_too_large"
