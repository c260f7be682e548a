"""The image, nginx and compose files under deploy/ parse and agree with the server they deploy
(the Kubernetes manifests: tests/test_deploy_kubernetes.py).

No container engine runs here, so this reads the files (tests/deploy_files.py). Every `PATCHBAY_*` variable they set must be
a setting (`server.settings.Settings`); the port they expose, forward to and probe is the one the
image serves on; the probe paths are the server's health routes; the proxies' timeouts, body
size and buffering are what docs/operations.md#behind-a-proxy asks; secrets come from the
operator's environment, never literal values. With Debian's nginx installed (`make install-test`), `nginx -t`
checks the nginx config too.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from server.settings import Settings
from server.v1.audio import MAX_AUDIO_BYTES
from tests.conftest import IN_CI
from tests.deploy_files import (
    DEPLOY,
    HEALTH,
    PACKAGES,
    ROOT,
    SECRETS,
    SESSION_SECONDS,
    SETTINGS,
    WEBSOCKETS,
    directive,
    dockerfile,
    final_stage,
    image_env,
    nginx_conf,
    seconds,
    size_bytes,
    stop_seconds,
    upstreams,
)
from voice.models import WHISPER_BASE_DIRNAME

# -- the Dockerfile ------------------------------------------------------------------------


def test_the_image_sets_only_settings_and_serves_on_its_exposed_port() -> None:
    env = image_env()
    assert {k for k in env if k.startswith("PATCHBAY_")} <= SETTINGS
    exposed = [args for op, args in final_stage() if op == "EXPOSE"]
    assert exposed == [env["PATCHBAY_PORT"]] == ["8080"]
    assert env["PATCHBAY_HOST"] == "0.0.0.0"  # reachable from outside the container
    assert [args for op, args in final_stage() if op == "CMD"] == ['["patchbay", "serve"]']


def test_the_image_carries_every_package_and_the_offline_voice_model() -> None:
    steps = dockerfile()
    copied = {args.split()[0] for op, args in steps if op == "COPY" and "--from" not in args}
    assert set(PACKAGES) <= copied
    include = re.search(r"include = \[(.*?)\]", (ROOT / "pyproject.toml").read_text())
    assert include is not None
    assert {p.strip(' "*') for p in include.group(1).split(",")} == set(PACKAGES)
    model_dir = image_env()["PATCHBAY_VOICE_WHISPER_MODEL_DIR"]
    assert model_dir.endswith("/" + WHISPER_BASE_DIRNAME)
    # Assembled at build time into the directory the server is told to load it from.
    assert any(op == "RUN" and f"voice.models --model-dir {model_dir}" in args for op, args in steps)
    assert any(op == "RUN" and "[offline-voice]" in args for op, args in steps)
    assert any(op == "RUN" and "espeak-ng" in args for op, args in final_stage())


def test_the_image_runs_unprivileged_and_checks_health_and_readiness() -> None:
    final = final_stage()
    users = [args for op, args in final if op == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert [i for i, (op, _) in enumerate(final) if op == "USER"][-1] < [
        i for i, (op, _) in enumerate(final) if op == "CMD"
    ][0]
    (check,) = [args for op, args in final if op == "HEALTHCHECK"]
    assert {"/healthz", "/readyz"} == HEALTH
    assert all(f"'{path}'" in check for path in HEALTH)
    assert "PATCHBAY_PORT" in check  # probes the port the server listens on


# -- nginx -----------------------------------------------------------------------------------


def test_nginx_passes_websockets_streams_and_uploads_as_the_server_needs() -> None:
    text = nginx_conf()
    assert directive(text, "proxy_http_version") == ["1.1"]
    assert "proxy_set_header Upgrade $http_upgrade" in text
    assert "proxy_set_header Connection $connection_upgrade" in text
    assert directive(text, "proxy_buffering") == ["off"]  # server-sent events go out as written
    # Read and send timeouts outlast the longest realtime session the server allows.
    assert all(
        seconds(t) > SESSION_SECONDS
        for n in ("proxy_read_timeout", "proxy_send_timeout")
        for t in directive(text, n)
    )
    assert directive(text, "proxy_read_timeout") and directive(text, "proxy_send_timeout")
    assert size_bytes(directive(text, "client_max_body_size")[0]) > MAX_AUDIO_BYTES
    # The one location covers the WebSocket routes (/v1/realtime, the Twilio media stream).
    assert re.findall(r"location\s+(\S+)\s*\{", text) == ["/"] and WEBSOCKETS
    # Idle upstream connections are closed by nginx before the replica closes them.
    keep_alive = float(Settings.model_fields["http_keep_alive_seconds"].default)
    assert 0 < seconds(directive(text, "keepalive_timeout")[0]) < keep_alive
    # X-Forwarded-* are sent, and the replicas trust them (compose, Kubernetes).
    assert "X-Forwarded-For $proxy_add_x_forwarded_for" in text and "X-Forwarded-Proto $scheme" in text


def test_nginx_config_is_valid_for_debians_nginx(tmp_path: Path) -> None:
    nginx = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None)
    if nginx is None:
        if IN_CI:
            pytest.fail("nginx is not installed (scripts/system-deps.sh test installs Debian's)")
        pytest.skip("nginx is not installed (make install-test installs Debian's)")
    # nginx -t resolves upstream host names: point the compose service names at loopback.
    conf = nginx_conf()
    for host, _ in upstreams():
        conf = conf.replace(f"server {host}:", "server 127.0.0.1:")
    (tmp_path / "patchbay.conf").write_text(conf.replace("listen 80;", "listen 127.0.0.1:8081;"))
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log stderr;\nevents {{}}\n"
        f"http {{\n  access_log off;\n  include {tmp_path}/patchbay.conf;\n}}\n"
    )
    done = subprocess.run(
        [nginx, "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


# -- docker compose --------------------------------------------------------------------------


def compose() -> dict[str, Any]:
    loaded = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def _patchbay_services(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: s for name, s in doc["services"].items() if s.get("image", "").startswith("patchbay:")}


def test_compose_runs_two_replicas_behind_nginx_on_postgres_and_redis() -> None:
    doc = compose()
    services = doc["services"]
    assert {"postgres", "redis", "nginx"} <= services.keys()
    replicas = {n: s for n, s in _patchbay_services(doc).items() if "command" not in s}
    assert len(replicas) == 2
    assert set(replicas) == {host for host, _ in upstreams()}  # nginx forwards to each replica
    assert {port for _, port in upstreams()} == {int(image_env()["PATCHBAY_PORT"])}
    assert all(s["expose"] == [image_env()["PATCHBAY_PORT"]] for s in replicas.values())
    assert "ports" not in {k for s in replicas.values() for k in s}  # reachable through nginx only
    assert set(services["nginx"]["depends_on"]) == set(replicas)
    assert any(
        v.endswith("nginx/patchbay.conf:/etc/nginx/conf.d/default.conf:ro")
        for v in services["nginx"]["volumes"]
    )
    build = replicas["patchbay-1"]["build"]
    assert (DEPLOY / build["context"] / build["dockerfile"]).resolve() == DEPLOY / "Dockerfile"
    # One database, one Redis and one token secret for all: the same environment everywhere.
    envs = [s["environment"] for s in replicas.values()]
    assert envs[0] == envs[1]
    assert (
        envs[0]["PATCHBAY_DATABASE_URL"].startswith("postgresql://")
        and "@postgres:5432/" in envs[0]["PATCHBAY_DATABASE_URL"]
    )
    assert envs[0]["PATCHBAY_REDIS_URL"].startswith("redis://redis:")
    # Migrations once, before the replicas start.
    migrate = services["migrate"]
    assert migrate["command"] == ["patchbay", "db", "upgrade"]
    assert all(
        s["depends_on"]["migrate"]["condition"] == "service_completed_successfully" for s in replicas.values()
    )


def test_compose_sets_only_settings_and_takes_secrets_from_the_environment() -> None:
    for name, service in _patchbay_services(compose()).items():
        env = service["environment"]
        assert set(env) <= SETTINGS, (name, set(env) - SETTINGS)
        for secret in SECRETS & set(env):
            assert "${" in env[secret], (name, secret)  # from deploy/.env, never written here
        assert not any(value == "" for value in env.values())  # an empty value is a value
    example = (DEPLOY / "patchbay.env.example").read_text()
    named = set(re.findall(r"^#?\s*(PATCHBAY_\w+)=", example, re.M))
    assert named <= SETTINGS and SECRETS - {"PATCHBAY_DATABASE_URL"} <= named


def test_compose_gives_a_stopping_replica_longer_than_its_drain() -> None:
    for name, service in _patchbay_services(compose()).items():
        if "command" in service:
            continue  # the migration job serves nothing
        grace = service["stop_grace_period"]
        assert grace.endswith("s"), (name, grace)
        drain = service["environment"].get("PATCHBAY_VOICE_DRAIN_SECONDS", Settings().voice_drain_seconds)
        assert float(grace[:-1]) > stop_seconds(drain), (name, grace, drain)
