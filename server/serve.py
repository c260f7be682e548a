"""Running the server: uvicorn's options, one process or several workers on one port.

`patchbay serve` checks and migrates once in the parent (`server.cli`), then calls `run`.
With `workers > 1` uvicorn's supervisor binds the port once and starts that many worker
processes (spawned, so each builds its app from the environment through
`app_from_environment`), restarts one that dies and stops them all on SIGTERM. The workers
share the database and, when `PATCHBAY_REDIS_URL` is set, the rate limits, cooldowns and
realtime session limits; configuration changes reach every worker through the config
version poll. The benchmark (`bench/voice.py`) runs its workers through `run` too, with its
own factory, so it measures what production runs.
"""

from __future__ import annotations

import logging
import os
import secrets
from typing import Any

from fastapi import FastAPI

from server.settings import Settings

log = logging.getLogger("patchbay.server")

APP_FACTORY = "server.serve:app_from_environment"


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """What uvicorn runs with, apart from the app: the same for one worker or many."""
    return {
        "host": settings.host,
        "port": settings.port,
        "workers": settings.workers,
        "loop": "uvloop",
        "http": "httptools",
        # The sans-I/O websockets protocol (uvicorn's `auto`, made explicit) took 35 us of CPU
        # per received message where the legacy one took 52; per-message deflate would
        # compress every 20 ms audio frame, for little gain on base64 PCM, at ~13 us of server
        # CPU a frame (bench/voice.py, docs/performance.md).
        "ws": "websockets-sansio",
        "ws_per_message_deflate": False,
        "log_config": None,
        "access_log": False,
        "timeout_graceful_shutdown": 10,
        "proxy_headers": False,
    }


def share_between_workers(settings: Settings) -> None:
    """Settings every worker must agree on, fixed in the parent before the workers start.

    A realtime token minted by one worker must verify on the others, so without a
    configured `voice_token_secret` the parent draws one for this run and hands it down
    through the environment the workers inherit.
    """
    if settings.workers > 1 and settings.voice_token_secret is None:
        os.environ["PATCHBAY_VOICE_TOKEN_SECRET"] = secrets.token_urlsafe(32)


def app_from_environment() -> FastAPI:
    """The app of one worker process, from the PATCHBAY_* environment (uvicorn's factory)."""
    from server.app import create_app
    from server.logs import configure_logging

    settings = Settings()
    configure_logging(settings.log_level, worker=settings.workers > 1)
    return create_app(settings, migrate=False, freeze_gc=True)


def run(settings: Settings, *, app: str = APP_FACTORY) -> None:
    """Serve in the foreground until SIGINT/SIGTERM. `app` is an import string of an app factory."""
    import uvicorn

    share_between_workers(settings)
    # Spawned workers read their settings from the environment, --workers included.
    os.environ["PATCHBAY_WORKERS"] = str(settings.workers)
    if settings.workers > 1:
        log.info(
            "starting workers",
            extra={"fields": {"workers": settings.workers, "redis": settings.redis_url is not None}},
        )
        if settings.redis_url is None:
            log.warning(
                "several workers without PATCHBAY_REDIS_URL: rate limits, cooldowns and realtime "
                "session limits are kept per worker"
            )
    # The parent's environment is what spawned workers read their settings from: the CLI's
    # --host/--port only bind, so they need not be passed on.
    uvicorn.run(app, factory=True, **uvicorn_options(settings))
