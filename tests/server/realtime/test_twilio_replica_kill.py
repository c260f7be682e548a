"""kill -9 of the replica serving a phone call: the call goes on, through Twilio's redirect, on
the other replica, with its conversation up to the last reply (issue 19, fault suite;
docs/voice.md#a-worker-that-dies).

Two replicas (fake built-in STT/TTS: tests/server/realtime/fake_engines_app.py) share a fresh
PostgreSQL database and a private Redis. A call's first stream, on A, has had a reply and its
checkpoint holds it when A gets SIGKILL: no code of A's runs after that. Twilio, seeing the
stream's socket close, runs the TwiML's `<Redirect>`, which the load balancer sends to B.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from sqlalchemy import select

from billing.ledger import Ledger
from server.db import Database
from server.services import Services
from server.settings import Settings
from server.tables import VoiceHandover
from tests.emulators.harness import ServedApp
from tests.emulators.openai import OpenAIEmulator, text
from tests.private_services import PrivateRedis
from tests.server.realtime.fake_engines_app import SERVE
from tests.server.realtime.twilio_phone import CALL, Phone, basic, redirect_of, stream_of, ulaw
from tests.server.v1.platform_billing import PLATFORM_KEY, Served, seed, server_env

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
BOUND = 60.0
"""A bound on a hang only; every wait ends as soon as its condition holds."""
HEARD = "when does the pharmacy close"
"""What the fake STT hears in any speech."""
REPLY = "It closes at nine tonight."


async def _rows(db: Database) -> dict[str, list[dict[str, Any]]]:
    async with db.session() as s:
        rows = (await s.execute(select(VoiceHandover.id, VoiceHandover.items))).all()
    return {row_id: list(items) for row_id, items in rows}


async def _checkpointed(db: Database, handover_id: str, items: int) -> list[dict[str, Any]]:
    """The call's checkpoint once it holds `items` items (it is written beside the call)."""
    for _ in range(int(BOUND / 0.05)):  # reads of the table, bounded; each ends the wait once it holds
        if len((rows := await _rows(db)).get(handover_id, [])) >= items:
            return rows[handover_id]
        await asyncio.sleep(0.05)
    raise AssertionError(f"checkpoint {handover_id} never held {items} items: {rows}")


async def test_a_call_whose_replica_is_killed_goes_on_from_its_last_reply_on_the_other(
    replica_database: Database, tmp_path: Path, private_redis_server: PrivateRedis
) -> None:
    db = replica_database
    try:
        await _call_across_a_kill(db, tmp_path, private_redis_server)
    finally:
        await db.dispose()


async def _call_across_a_kill(db: Database, tmp_path: Path, redis: PrivateRedis) -> None:
    upstream = OpenAIEmulator("openai", api_key=PLATFORM_KEY, models=("gpt-4o-mini",))
    upstream.always(text(REPLY, prompt_tokens=20, completion_tokens=8))
    with ServedApp(upstream) as emulator:
        org_id, key = await seed(db, tmp_path, emulator.url + "/v1")
        services = Services.build(Settings(data_dir=tmp_path, database_url=db.url), db, admin_api=False)
        async with db.session() as s:
            await services.agents().set_org_routing(s, org_id, chains={"chat": ["openai/gpt-4o-mini"]})
        await Ledger(db.sessions).grant(org_id, 10_000_000, "grant-1")
        base = server_env(db.url, tmp_path, hold_ttl_seconds=10) | {
            "PATCHBAY_REDIS_URL": redis.url,
            "PATCHBAY_VOICE_TOKEN_SECRET": "voice-secret-0123456789abcdefghijklmnop",
        }
        env_a = base | {"PATCHBAY_DATA_DIR": str(tmp_path / "a")}
        env_b = base | {"PATCHBAY_DATA_DIR": str(tmp_path / "b")}
        async with (
            Served(env_b, tmp_path / "b.log", SERVE) as b,
            Served(env_a, tmp_path / "a.log", SERVE) as a,
        ):
            async with httpx.AsyncClient(timeout=BOUND) as http:
                answered = await http.post(
                    f"{a.url}/v1/twilio/voice", data=CALL, headers={"authorization": basic("twilio", key)}
                )
                assert answered.status_code == 200, answered.text
                url, given = stream_of(answered.text)
                phone = Phone(await websockets.connect(url))
                await phone.start(given)
                await phone.say(ulaw("When does the pharmacy close?"))
                await phone.until(lambda _: phone.replied(), within=BOUND)
                first = await _checkpointed(db, given["handover"], 2)
                assert [(i["role"], i["text"]) for i in first] == [("user", HEARD), ("assistant", REPLY)]

                await a.kill()  # SIGKILL: A writes nothing more
                with pytest.raises(websockets.ConnectionClosed):
                    await phone.recv(within=BOUND)
                # Twilio runs the rest of the TwiML; the load balancer sends the redirect to B.
                redirect = redirect_of(answered.text).replace(a.url, b.url)
                moved = await http.post(redirect, data=CALL)
                assert moved.status_code == 200, moved.text
                url, again = stream_of(moved.text)
                assert again["resume"] == given["handover"], moved.text
                assert url.startswith(b.url.replace("http://", "ws://")), url

                phone = Phone(await websockets.connect(url), sid="MZ0456")
                await phone.start(again)
                await phone.say(ulaw("And on Sunday?"))
                await phone.until(lambda _: phone.replied(), within=BOUND)
                # B's session went on with A's conversation: the LLM saw the first turn.
                assert upstream.chat_requests[-1].json["messages"][:3] == [
                    {"role": "user", "content": HEARD},
                    {"role": "assistant", "content": REPLY},
                    {"role": "user", "content": HEARD},
                ]
                # A's checkpoint was taken (used once); B's stream keeps its own.
                await _checkpointed(db, again["handover"], 4)
                assert given["handover"] not in await _rows(db)
                await phone.hang_up()
            await b.stop()
