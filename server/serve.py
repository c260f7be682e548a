"""Running the server: uvicorn's options, one process or several workers on one port.

`patchbay serve` checks and migrates once in the parent (`server.cli`), then calls `run`.
With `workers > 1` the parent binds one listening socket per worker, all on the same port
with SO_REUSEPORT, and uvicorn's supervisor (`server.worker_supervisor`) starts that many
worker processes (spawned, so each builds its app from the environment through
`app_from_environment`), each serving its own socket; it restarts one that dies, on the same
socket, and stops them all on SIGTERM. The workers share the database and, when
`PATCHBAY_REDIS_URL` is set, the rate limits, cooldowns and realtime session limits;
configuration changes reach every worker through the config version poll. The benchmark
(`bench/voice.py`) runs its workers through `run` too, with its own factory, so it measures
what production runs.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
from typing import Any

from fastapi import FastAPI
from uvicorn import Config
from uvicorn.config import STARTUP_FAILURE

from server.header_timeout import header_timeout_protocol
from server.metrics import prepare_multiprocess_dir
from server.open_files import raise_open_file_limit
from server.settings import Settings
from server.worker_supervisor import WorkerSupervisor
from server.ws_drain import REQUEST_GRACE_SECONDS, websocket_protocol

log = logging.getLogger("patchbay.server")

APP_FACTORY = "server.serve:app_from_environment"
WEBSOCKET_PROTOCOL = "server.websocket_direct:DirectMessageProtocol"
"""uvicorn's sans-I/O protocol, voice messages straight to their handler; `patchbay serve` runs
it with the drain at shutdown (`server.ws_drain`)."""


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """What uvicorn runs with, apart from the app: the same for one worker or many."""
    return {
        "host": settings.host,
        "port": settings.port,
        "workers": settings.workers,
        "loop": "uvloop",
        # httptools, with a deadline for each request's headers (uvicorn has none).
        "http": header_timeout_protocol(settings.http_header_timeout_seconds),
        "timeout_keep_alive": settings.http_keep_alive_seconds,
        "limit_concurrency": settings.http_max_connections,
        # The sans-I/O websockets protocol (uvicorn's `auto`) took 35 us of CPU per received
        # message where the legacy one took 52; ours hands voice messages to their handler
        # without the ASGI queue (server.websocket_direct). Per-message deflate would
        # compress every 20 ms audio frame, for little gain on base64 PCM, at ~13 us of server
        # CPU a frame (bench/voice.py, docs/performance.md).
        "ws": websocket_protocol(settings.voice_drain_seconds),
        "ws_per_message_deflate": False,
        "log_config": None,
        "access_log": False,
        # Open realtime sessions drain first (server.ws_drain); requests in flight then get the rest.
        "timeout_graceful_shutdown": settings.voice_drain_seconds + REQUEST_GRACE_SECONDS,
        # The client's scheme and address from a trusted proxy's X-Forwarded-* headers only.
        "proxy_headers": settings.forwarded_allow_ips is not None,
        "forwarded_allow_ips": settings.forwarded_allow_ips,
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

    raise_open_file_limit(settings)  # before the workers: they inherit it
    share_between_workers(settings)
    # Spawned workers read their settings from the environment, --workers included.
    os.environ["PATCHBAY_WORKERS"] = str(settings.workers)
    if settings.workers > 1:
        # Before any worker starts: each keeps its metric values in files there (server.metrics).
        prepare_multiprocess_dir(settings.data_dir)
        log.info(
            "starting workers",
            extra={"fields": {"workers": settings.workers, "redis": settings.redis_url is not None}},
        )
        if settings.redis_url is None:
            log.warning(
                "several workers without PATCHBAY_REDIS_URL: rate limits, cooldowns and realtime "
                "session limits are kept per worker"
            )
    options = uvicorn_options(settings)
    if settings.workers == 1:
        uvicorn.run(app, factory=True, **options)
        return
    # The parent's environment is what spawned workers read their settings from: the CLI's
    # --host/--port only bind, which happens here.
    config = Config(app, factory=True, **options)
    WorkerSupervisor(config, bind_worker_sockets(config.host, config.port, settings.workers)).run()


def bind_worker_sockets(host: str, port: int, count: int, *, backlog: int = 2048) -> list[socket.socket]:
    """`count` listening sockets on one address, in one SO_REUSEPORT group.

    The kernel spreads new connections over the group by a hash of each connection's
    addresses, so every worker gets its share. With one socket shared by all workers,
    whichever worker is waiting in accept() takes the next connection: 300 voice sessions
    arriving one by one over 2 workers split 237/63 in bench/voice.py. The parent keeps
    every socket open and listening, so connections that arrive while a worker restarts wait
    in its socket's backlog for the replacement.
    """
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind(address)
            sock.listen(backlog)
            sock.set_inheritable(True)
            # Port 0 (tests) picks a free port once; the rest of the group joins it.
            address = sock.getsockname()
    except OSError as exc:
        for sock in sockets:
            sock.close()
        log.error("cannot listen", extra={"fields": {"host": host, "port": port, "error": str(exc)}})
        raise SystemExit(STARTUP_FAILURE) from None
    bound: int = sockets[0].getsockname()[1]
    log.info("listening", extra={"fields": {"url": f"http://{host}:{bound}", "sockets": count}})
    return sockets
