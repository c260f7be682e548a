"""kill -9 of one of two replicas in the middle of a voice turn, then its restart (issue 19,
fault suite; docs/reliability.md#a-replica-killed-mid-stream).

Two replicas (fake built-in STT/TTS: tests/server/realtime/fake_engines_app.py) share a fresh
PostgreSQL database and a private Redis, and serve one platform-paid org whose LLM streams
slowly. A realtime session on each replica is in the middle of a turn (its reply audio has
started) when replica A gets SIGKILL. B's session finishes its turn (`response.done`,
completed) and takes another; A, restarted, serves a new session's turn; no hold stays open
once the killed process's lease TTL has passed, and the ledger stays consistent. Usage rows:
each completed turn has its STT, LLM and TTS rows, and A's cut turn the STT row it recorded
before the kill (journaled, written by the restarted A), each exactly once.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest
import websockets
from sqlalchemy import select

from billing.ledger import Ledger
from billing.tables import UsageRecord
from server.db import Database
from server.services import Services
from server.settings import Settings
from tests.billing.ledger_fakes import assert_consistent
from tests.emulators.harness import ServedApp
from tests.emulators.openai import OpenAIEmulator, text
from tests.private_services import PrivateRedis
from tests.server.conftest import ADMIN_TOKEN
from tests.server.realtime.conftest import Client
from tests.server.realtime.fake_engines_app import SERVE
from tests.server.realtime.test_billing import audio_commit, quiet_session
from tests.server.v1.platform_billing import PLATFORM_KEY, Served, no_open_holds, seed, server_env

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
GRANT = 10_000_000
BOUND = 90.0
"""A bound on a hang only; every wait ends as soon as its condition holds."""
SLOW = text(" ".join(["Sure."] * 30), prompt_tokens=20, completion_tokens=30, chunk_delay=0.05)


async def _session(url: str, key: str) -> Client:
    ws = await websockets.connect(
        url.replace("http://", "ws://") + "/v1/realtime?model=default",
        additional_headers={"authorization": f"Bearer {key}"},
        max_size=None,
    )

    async def connect() -> Client:
        return Client(ws)

    return await quiet_session(connect)


async def _start_turn(client: Client) -> None:
    """Speak, ask for the reply, and return once its audio has started."""
    await audio_commit(client, 0.5)
    await client.send("response.create")
    await client.until("response.output_audio.delta", within=BOUND)


async def test_sigkill_of_a_replica_mid_voice_turn(
    replica_database: Database, tmp_path: Path, private_redis_server: PrivateRedis
) -> None:
    db, redis_server = replica_database, private_redis_server
    upstream = OpenAIEmulator("openai", api_key=PLATFORM_KEY, models=("gpt-4o-mini",))
    upstream.always(SLOW)
    ledger = Ledger(db.sessions)
    with ServedApp(upstream) as emulator:
        org_id, key = await seed(db, tmp_path, emulator.url + "/v1")
        services = Services.build(Settings(data_dir=tmp_path, database_url=db.url), db, admin_api=False)
        async with db.session() as s:
            await services.agents().set_org_routing(s, org_id, chains={"chat": ["openai/gpt-4o-mini"]})
        await ledger.grant(org_id, GRANT, "grant-1")
        base = server_env(db.url, tmp_path, hold_ttl_seconds=10)
        base |= {
            "PATCHBAY_REDIS_URL": redis_server.url,
            "PATCHBAY_ADMIN_TOKEN": ADMIN_TOKEN,
            "PATCHBAY_VOICE_TOKEN_SECRET": "voice-secret-0123456789abcdefghijklmnop",
        }
        env_a = base | {"PATCHBAY_DATA_DIR": str(tmp_path / "a")}
        env_b = base | {"PATCHBAY_DATA_DIR": str(tmp_path / "b")}
        async with Served(env_b, tmp_path / "b.log", SERVE) as b:
            async with Served(env_a, tmp_path / "a.log", SERVE) as a:
                on_a, on_b = await _session(a.url, key), await _session(b.url, key)
                await asyncio.gather(_start_turn(on_a), _start_turn(on_b))
                await a.kill()
                done = (await on_b.until("response.done", within=BOUND))[-1]
                assert done["response"]["status"] == "completed", done
                with pytest.raises(websockets.ConnectionClosed):
                    await on_a.until("response.done", within=BOUND)
                await _start_turn(on_b)
                assert (await on_b.until("response.done", within=BOUND))[-1]["response"][
                    "status"
                ] == "completed"
                await on_b.ws.close()
            async with Served(env_a, tmp_path / "a.log", SERVE) as again:
                on_again = await _session(again.url, key)
                await _start_turn(on_again)
                assert (await on_again.until("response.done", within=BOUND))[-1]["response"][
                    "status"
                ] == "completed"
                await on_again.ws.close()
                await no_open_holds(again.url, org_id, ADMIN_TOKEN)
                await again.stop()
            await b.stop()
    await assert_consistent(db, ledger, org_id)
    async with db.sessions() as s:
        rows = Counter(
            (
                await s.execute(
                    select(UsageRecord.request_id, UsageRecord.turn_id, UsageRecord.segment).where(
                        UsageRecord.org_id == org_id
                    )
                )
            ).all()
        )
    await db.dispose()
    # TTS writes a row per spoken sentence; STT and LLM one per turn: never twice (a replay
    # writes each journaled row once, by its id).
    assert all(n == 1 for (_, _, segment), n in rows.items() if segment != "tts"), rows
    turns: dict[str | None, dict[str | None, set[str]]] = {}
    for session_id, turn_id, segment in rows:
        turns.setdefault(session_id, {}).setdefault(turn_id, set()).add(segment)
    whole = {"llm", "stt", "tts"}
    done = sorted(len(by_turn) for by_turn in turns.values() if all(t == whole for t in by_turn.values()))
    assert done == [1, 2], turns  # B's two turns, the restarted A's one, each with every segment
    [cut] = [t for by_turn in turns.values() for t in by_turn.values() if t != whole]
    # A's cut turn: its STT row, recorded before its reply started (and the sentences it had
    # spoken, if any); no LLM row, the reply was cut before it settled.
    assert "stt" in cut and cut <= {"stt", "tts"}, turns
