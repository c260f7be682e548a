"""Part of bench/voice.py (and bench/soak.py, bench/voice_history.py): the processes under test.
The OpenAI emulator as the LLM upstream, and Patchbay run by `server.serve.run` with W workers on
a fresh SQLite database whose org routes to it, each worker running `bench.voice_worker:bench_app`.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.emulators.harness import free_port

LLM_KEY = "sk-bench-0123456789abcdef"
MASTER_KEY = "v1:" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWY="


def serve_llm(port: int) -> None:
    import uvicorn

    from tests.emulators.openai import OpenAIEmulator, Scenario

    app = OpenAIEmulator(
        "openai",
        api_key=LLM_KEY,
        models=("gpt-4o-mini",),
        fast=True,
        default=Scenario(text="It closes at six. Anything else?"),
    )
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="error", access_log=False, lifespan="off")


def _environment(data_dir: Path, port: int, workers: int) -> dict[str, str]:
    return {
        "PATCHBAY_DATA_DIR": str(data_dir),
        "PATCHBAY_HOST": "127.0.0.1",
        "PATCHBAY_PORT": str(port),
        "PATCHBAY_WORKERS": str(workers),
        "PATCHBAY_MASTER_KEY": MASTER_KEY,
        "PATCHBAY_ALLOW_PRIVATE_BASE_URLS": "true",
        "PATCHBAY_ALLOW_PLAIN_HTTP_BASE_URLS": "true",
        "PATCHBAY_LOG_LEVEL": "WARNING",
        "PATCHBAY_API_KEY_RATE_LIMIT": "off",
        "PATCHBAY_VOICE_MAX_SESSIONS_PER_KEY": "100000",
        # Stopped with SIGTERM when the run ends: callers still connected are cut, not waited for.
        "PATCHBAY_VOICE_DRAIN_SECONDS": "0",
        "BENCH_STATS_DIR": str(data_dir / "stats"),
    }


async def _set_up(llm_port: int) -> str:
    """Migrate, create the org, its LLM connection and chain; return a server API key."""
    from providers.vault.secret import Secret
    from server import accounts
    from server.services import Services
    from server.settings import Settings

    services = Services.build(Settings())
    try:
        await services.db.upgrade()
        async with services.db.session() as s:
            org = await accounts.create_org(s, "Bench")
            await services.connections().create(
                s,
                org.id,
                provider="openai",
                name="main",
                base_url=f"http://127.0.0.1:{llm_port}/v1",
                key=Secret(LLM_KEY),
            )
            await services.agents().set_org_routing(s, org.id, chains={"chat": ["openai/gpt-4o-mini"]})
            return (await accounts.create_api_key(s, org.id, name="bench")).key
    finally:
        await services.aclose()


def _serve_patchbay(environment: dict[str, str]) -> None:
    os.environ.update(environment)
    from server.logs import configure_logging
    from server.serve import run
    from server.settings import Settings

    settings = Settings()
    configure_logging(settings.log_level)
    run(settings, app="bench.voice_worker:bench_app")


@dataclass(frozen=True)
class RunningPatchbay:
    port: int
    key: str
    data_dir: Path
    pid: int


@contextlib.contextmanager
def patchbay_running(workers: int, llm_port: int) -> Iterator[RunningPatchbay]:
    """Patchbay with W workers on a fresh database whose org routes to the LLM emulator at
    `llm_port`, answering /readyz when yielded; stopped (SIGTERM) on exit. Shared by this bench
    and bench/soak.py."""
    context = multiprocessing.get_context("spawn")
    port = free_port()
    while port == llm_port:  # the emulator may not have bound its port yet
        port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        environment = _environment(data_dir, port, workers)
        (data_dir / "stats").mkdir()
        saved = dict(os.environ)
        os.environ.update(environment)
        try:
            key = asyncio.run(_set_up(llm_port))
        finally:
            os.environ.clear()
            os.environ.update(saved)
        # Not a daemon: uvicorn's supervisor starts the workers as its children.
        server = context.Process(target=_serve_patchbay, args=(environment,))
        server.start()
        try:
            # With one worker, uvicorn runs the app factory (which publishes the probe's side
            # port) before it binds the serving port: callers that went by the side port alone
            # could find the serving port refusing connections.
            wait_ready(f"http://127.0.0.1:{port}", server)
            yield RunningPatchbay(port, key, data_dir, server.pid or 0)
        finally:
            server.terminate()  # SIGTERM: uvicorn's supervisor stops its workers
            server.join(15)


def wait_ready(base: str, server: multiprocessing.process.BaseProcess, timeout: float = 120) -> None:
    """Until `base`/readyz answers 200; SystemExit if the server exits or the time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not server.is_alive():
            raise SystemExit(f"Patchbay exited with code {server.exitcode} before it was ready")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(base + "/readyz", timeout=2).status_code == 200:
                return
        time.sleep(0.2)  # polling another process for readiness
    raise SystemExit(f"Patchbay did not get ready within {timeout:.0f} s")
