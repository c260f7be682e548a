"""Readers of the deployment files under deploy/, and what the server says they must agree with.

Shared by tests/test_deploy.py (image, nginx, compose) and tests/test_deploy_kubernetes.py.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from server.health import router as health_router
from server.realtime.endpoint import router as realtime_router
from server.realtime.twilio import router as twilio_router
from server.settings import Settings
from server.ws_drain import REQUEST_GRACE_SECONDS

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"

SETTINGS = {f"PATCHBAY_{name.upper()}" for name in Settings.model_fields}
SECRETS = {
    "PATCHBAY_MASTER_KEY",
    "PATCHBAY_ADMIN_TOKEN",
    "PATCHBAY_VOICE_TOKEN_SECRET",
    "PATCHBAY_DATABASE_URL",
}
"""Never written into a deployment file: each replica gets them from the operator's secret store."""
PACKAGES = ("foundation", "providers", "routing", "billing", "voice", "server")
SESSION_SECONDS = float(Settings.model_fields["voice_max_session_seconds"].default)
"""The longest realtime session the server allows by default; the proxies must outlast it."""


def stop_seconds(drain: str | float) -> float:
    """What SIGTERM may take with `drain` as PATCHBAY_VOICE_DRAIN_SECONDS: the drain, then
    the requests in flight (server/ws_drain.py). An orchestrator's grace period must be longer."""
    return float(Settings(voice_drain_seconds=float(drain)).voice_drain_seconds) + REQUEST_GRACE_SECONDS


def _routes(router: Any) -> set[str]:
    return {route.path for route in router.routes}


HEALTH = _routes(health_router)
WEBSOCKETS = _routes(realtime_router) | {p for p in _routes(twilio_router) if "media-stream" in p}


def dockerfile(path: Path = DEPLOY / "Dockerfile") -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order; continuation lines joined, comments dropped."""
    text = re.sub(
        r"\\\n", " ", "\n".join(ln for ln in path.read_text().splitlines() if not ln.lstrip().startswith("#"))
    )
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1].strip())
        for line in text.splitlines()
        if line.strip()
    ]


def final_stage() -> list[tuple[str, str]]:
    steps = dockerfile()
    last_from = max(i for i, (op, _) in enumerate(steps) if op == "FROM")
    return steps[last_from:]


def image_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for op, args in final_stage():
        if op == "ENV":
            env.update(re.findall(r"(\w+)=(\S+)", args))
    return env


def nginx_conf() -> str:
    return (DEPLOY / "nginx" / "patchbay.conf").read_text()


def directive(text: str, name: str) -> list[str]:
    return re.findall(rf"^\s*{name}\s+([^;]+);", text, re.M)


def seconds(value: str) -> float:
    number, unit = re.fullmatch(r"(\d+)([smh]?)", value.strip()).groups()  # type: ignore[union-attr]
    return int(number) * {"": 1, "s": 1, "m": 60, "h": 3600}[unit]


def size_bytes(value: str) -> int:
    number, unit = re.fullmatch(r"(\d+)([kKmMgG]?)", value.strip()).groups()  # type: ignore[union-attr]
    return int(number) * 1024 ** "_kmg".index(unit.lower() or "_")


def upstreams() -> list[tuple[str, int]]:
    block = re.search(r"upstream patchbay \{(.*?)\}", nginx_conf(), re.S)
    assert block is not None
    return [
        (host, int(port)) for host, port in re.findall(r"^\s*server\s+([\w.-]+):(\d+)", block.group(1), re.M)
    ]
