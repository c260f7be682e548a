"""Thousands of random and malformed events: every bad one gets an error event, the socket
stays open, the session still works afterwards, and the server stays healthy."""

from __future__ import annotations

import asyncio
import base64
import random
import string
from typing import Any

import httpx
import orjson

from tests.emulators.openai import OpenAIEmulator, Scenario
from tests.server.realtime.conftest import Client, Patchbay

KNOWN = [
    "session.update",
    "input_audio_buffer.append",
    "input_audio_buffer.commit",
    "input_audio_buffer.clear",
    "conversation.item.create",
    "conversation.item.truncate",
    "conversation.item.delete",
    "conversation.item.retrieve",
    "response.create",
    "response.cancel",
    "output_audio_buffer.clear",
    "patchbay.ping",
]


def junk(rng: random.Random) -> Any:
    kind = rng.randrange(8)
    if kind == 0:
        return rng.randint(-(2**40), 2**40)
    if kind == 1:
        return "".join(rng.choices(string.printable, k=rng.randrange(0, 40)))
    if kind == 2:
        return None
    if kind == 3:
        return rng.random() * 1e6
    if kind == 4:
        return [junk(rng) for _ in range(rng.randrange(3))]
    if kind == 5:
        return {
            rng.choice(["type", "rate", "text", "role", "format", "x"]): junk(rng)
            for _ in range(rng.randrange(3))
        }
    if kind == 6:
        return rng.choice([True, False])
    return base64.b64encode(rng.randbytes(rng.randrange(0, 64))).decode()


def random_event(rng: random.Random) -> tuple[str, bool]:
    """A message and whether it is certainly invalid."""
    kind = rng.randrange(10)
    if kind == 0:
        return "".join(rng.choices(string.printable, k=rng.randrange(1, 80))), True  # not JSON
    if kind == 1:
        return orjson.dumps({"type": "x." + "".join(rng.choices(string.ascii_lowercase, k=6))}).decode(), True
    if kind == 2:
        return orjson.dumps(junk(rng)).decode(), False
    if kind == 3:
        odd = rng.randbytes(rng.randrange(0, 200) * 2 + 1)
        return orjson.dumps(
            {"type": "input_audio_buffer.append", "audio": base64.b64encode(odd).decode()}
        ).decode(), True
    if kind == 4:
        bad = "".join(rng.choices("!@#$%^&*", k=rng.randrange(1, 30)))
        return orjson.dumps({"type": "input_audio_buffer.append", "audio": bad}).decode(), True
    if kind == 5:
        session = {
            rng.choice(["audio", "turn_detection", "output_modalities", "voice", "instructions"]): junk(rng)
        }
        return orjson.dumps({"type": "session.update", "session": session}).decode(), False
    if kind == 6:
        item = {"type": "message", "role": rng.choice(["user", "system", "tool", 3]), "content": junk(rng)}
        return orjson.dumps({"type": "conversation.item.create", "item": item}).decode(), False
    if kind == 7 and rng.random() < 0.05:
        return orjson.dumps({"type": "response.create"}).decode(), False
    event: dict[str, Any] = {"type": rng.choice(KNOWN)}
    for _ in range(rng.randrange(3)):
        event[rng.choice(["item_id", "audio_end_ms", "response_id", "event_id", "audio", "item"])] = junk(rng)
    return orjson.dumps(event).decode(), False


async def test_thousands_of_bad_events_leave_the_session_and_server_healthy(
    connect: Any, patchbay: Patchbay, llm: OpenAIEmulator
) -> None:
    llm.always(Scenario(text="Okay."))
    rng = random.Random(20261125)
    client: Client = await connect()
    await client.until("session.created")

    errors = 0
    codes: set[str] = set()
    done = asyncio.Event()

    async def read() -> None:
        nonlocal errors
        while True:
            event = await client.recv(within=30)
            if event["type"] == "error":
                errors += 1
                codes.add(event["error"]["code"])
                if event["error"].get("event_id") == "fuzz-end":
                    done.set()
                    return

    reader = asyncio.create_task(read())
    certainly_bad = 0
    for _ in range(3000):
        message, bad = random_event(rng)
        certainly_bad += bad
        await client.send_raw(message)
    await client.send("conversation.item.retrieve", item_id="missing", event_id="fuzz-end")
    await asyncio.wait_for(done.wait(), 60)
    await reader

    assert certainly_bad > 1000
    assert errors >= certainly_bad
    assert "server_error" not in codes  # every failure was a diagnosed client error, none a crash
    assert {
        "invalid_json",
        "unknown_event_type",
        "invalid_base64",
        "invalid_audio_format",
        "invalid_value",
    } <= codes

    # The same socket still holds a conversation.
    await client.send("response.cancel")
    await client.send("session.update", session={"type": "realtime", "output_modalities": ["text"]})
    await client.send(
        "conversation.item.create",
        item={"type": "message", "role": "user", "content": [{"type": "input_text", "text": "still there?"}]},
    )
    await client.send("response.create")
    while True:
        event = await client.recv(within=20)
        # A response the fuzz started and cancelled before the LLM wrote anything has no output.
        if (
            event["type"] == "response.done"
            and event["response"]["output"]
            and event["response"]["output"][0]["content"][0].get("text") == "Okay."
        ):
            break

    async with httpx.AsyncClient(base_url=patchbay.url) as http:
        assert (await http.get("/healthz")).status_code == 200
    fresh: Client = await connect()
    assert (await fresh.recv())["type"] == "session.created"
