"""`patchbay serve`: one process or several workers on one port, started and stopped for real."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import websockets

from server.header_timeout import HeaderTimeoutProtocol
from server.open_files import CEILING, needed
from server.serve import share_between_workers, uvicorn_options
from server.settings import Settings
from server.ws_drain import REQUEST_GRACE_SECONDS, DrainingProtocol
from tests.emulators.harness import free_port

pytestmark = pytest.mark.slow

PATCHBAY = str(Path(sys.executable).with_name("patchbay"))


def test_workers_agree_on_the_realtime_token_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PATCHBAY_VOICE_TOKEN_SECRET", raising=False)
    share_between_workers(Settings(workers=1))
    assert "PATCHBAY_VOICE_TOKEN_SECRET" not in os.environ  # one process: its own random secret

    share_between_workers(Settings(workers=2))
    drawn = os.environ["PATCHBAY_VOICE_TOKEN_SECRET"]
    assert len(drawn) >= 32
    # What each spawned worker reads from the environment it inherits:
    assert Settings().voice_token_secret is not None
    assert Settings().voice_token_secret.get_secret_value() == drawn  # type: ignore[union-attr]

    monkeypatch.setenv("PATCHBAY_VOICE_TOKEN_SECRET", "configured-secret")
    share_between_workers(Settings(workers=2))
    assert os.environ["PATCHBAY_VOICE_TOKEN_SECRET"] == "configured-secret"


def test_uvicorn_runs_without_websocket_compression() -> None:
    options = uvicorn_options(Settings(workers=3, port=9999))
    assert options["workers"] == 3 and options["port"] == 9999
    assert options["ws_per_message_deflate"] is False
    assert options["log_config"] is None  # our JSON logging, configured per process
    assert options["proxy_headers"] is False
    trusting = uvicorn_options(Settings(forwarded_allow_ips="10.0.0.0/8"))
    assert trusting["proxy_headers"] is True and trusting["forwarded_allow_ips"] == "10.0.0.0/8"


def test_uvicorn_gets_the_connection_timeouts_and_limit() -> None:
    options = uvicorn_options(
        Settings(http_header_timeout_seconds=7.5, http_keep_alive_seconds=3, http_max_connections=500)
    )
    assert options["timeout_keep_alive"] == 3 and options["limit_concurrency"] == 500
    protocol = options["http"]
    assert protocol.func is HeaderTimeoutProtocol and protocol.keywords == {"header_timeout": 7.5}
    assert uvicorn_options(Settings(http_max_connections=None))["limit_concurrency"] is None


def test_uvicorn_waits_out_the_drain_then_the_requests() -> None:
    options = uvicorn_options(Settings(voice_drain_seconds=45))
    protocol = options["ws"]
    assert protocol.func is DrainingProtocol and protocol.keywords == {"drain_seconds": 45}
    assert options["timeout_graceful_shutdown"] == 45 + REQUEST_GRACE_SECONDS


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found.update(int(p) for p in text)
    return found


def _workers(pid: int) -> set[int]:
    """The supervisor's worker processes (not multiprocessing's resource tracker)."""
    found = set()
    for child in _children(pid):
        with contextlib.suppress(OSError):
            if "spawn_main" in Path(f"/proc/{child}/cmdline").read_text():
                found.add(child)
    return found


def _open_file_limits(pid: int) -> tuple[int, int]:
    """A process's soft and hard open-file limits, from /proc (unlimited as `RLIM_INFINITY`)."""
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return tuple(  # type: ignore[return-value]
                resource.RLIM_INFINITY if v == "unlimited" else int(v) for v in (soft, hard)
            )
    raise AssertionError(f"no open-file limit for {pid}")


def _listening_inodes(port: int) -> set[str]:
    """Inodes of the IPv4 sockets listening on 127.0.0.1:`port`."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == f"0100007F:{port:04X}" and fields[3] == "0A":  # 0A = LISTEN
            inodes.add(fields[9])
    return inodes


def _socket_inodes(pid: int) -> set[str]:
    found = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                found.add(target[len("socket:[") : -1])
    return found


@contextlib.contextmanager
def _serve(
    tmp_path: Path,
    *args: str,
    env_extra: dict[str, str] | None = None,
    soft_open_files: int | None = None,
) -> Iterator[tuple[subprocess.Popen[bytes], str, dict[str, str]]]:
    """`patchbay serve ARGS` on a fresh data dir, once /readyz answers 200; `soft_open_files`
    starts it with that soft open-file limit (the hard one unchanged), as systemd's 1,024 would."""

    def lower_soft_limit() -> None:
        if soft_open_files is not None:
            hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft_open_files, hard))

    port = free_port()
    env = {
        **os.environ,
        "PATCHBAY_DATA_DIR": str(tmp_path),
        "PATCHBAY_PORT": str(port),
        "PATCHBAY_WORKERS": "1",
        "PATCHBAY_LOG_LEVEL": "INFO",
    }
    for name in ("PATCHBAY_VOICE_TOKEN_SECRET", "PATCHBAY_DATABASE_URL", "PATCHBAY_FORWARDED_ALLOW_IPS"):
        env.pop(name, None)
    env.update(env_extra or {})
    log = tmp_path / "serve.log"  # a file, not a pipe: a full pipe would stall the server's logging
    with log.open("wb") as sink:
        # Its own process group, so the cleanup below also reaches the workers of a master that
        # died or was killed (they would otherwise outlive the test).
        proc = subprocess.Popen(
            [PATCHBAY, "serve", *args],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=sink,
            start_new_session=True,
            preexec_fn=lower_soft_limit,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120  # a loaded CI machine imports slowly
        while True:
            assert proc.poll() is None, log.read_text(errors="replace")[-4000:]
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, (
                f"patchbay serve {' '.join(args)} did not get ready in 120 s: {log.read_text(errors='replace')[-4000:]}"
            )
            time.sleep(0.2)  # polling for readiness, not standing in for it
        # /readyz answered from one worker; the others' sockets already queue connections while
        # they start (by design, see `bind_worker_sockets`), so on a loaded machine a request the
        # kernel hands one could wait out a client timeout. Wait for each to say it started.
        workers = int(args[args.index("--workers") + 1]) if "--workers" in args else 1
        while (
            len({line.get("pid") for line in logged_lines(tmp_path) if line.get("msg") == "patchbay started"})
            < workers
        ):
            assert proc.poll() is None, log.read_text(errors="replace")[-4000:]
            assert time.monotonic() < deadline, f"{workers} workers did not all start in 120 s"
            time.sleep(0.1)  # polling the log for the start lines, not standing in for them
        yield proc, base, env
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def logged_lines(tmp_path: Path) -> list[dict[str, Any]]:
    """The JSON lines `patchbay serve` (started by `_serve`) wrote to stderr."""
    text = (tmp_path / "serve.log").read_text(errors="replace")
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str, dict[str, str]]]:
    with _serve(tmp_path, "--workers", "2", soft_open_files=256) as running:
        yield running


def test_one_process_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    """What `make serve` runs: no supervisor, the app built from the environment."""
    with _serve(tmp_path) as (proc, base, _):
        assert _workers(proc.pid) == set()
        assert httpx.get(f"{base}/healthz").json() == {"status": "ok"}
        proc.send_signal(signal.SIGTERM)
        # uvicorn re-raises the signal once it has shut down cleanly ("patchbay stopped" below).
        assert proc.wait(30) in (0, -signal.SIGTERM)
        lines = logged_lines(tmp_path)
    assert [line["msg"] for line in lines if line["msg"].startswith("patchbay ")] == [
        "patchbay started",
        "patchbay stopped",
    ]
    assert all("pid" not in line for line in lines)  # one process: no worker ids


@pytest.mark.parametrize("trusted", [None, "127.0.0.1"], ids=["untrusted", "trusted-proxy"])
def test_forwarded_scheme_counts_only_from_a_trusted_proxy(tmp_path: Path, trusted: str | None) -> None:
    """Behind a TLS-terminating proxy the Twilio stream URL must be wss://, and only a trusted
    proxy may say so."""
    extra = {"PATCHBAY_FORWARDED_ALLOW_IPS": trusted} if trusted else {}
    with _serve(tmp_path, env_extra=extra) as (_, base, env):
        subprocess.run(
            [PATCHBAY, "org", "create", "acme", "--json"], env=env, check=True, capture_output=True
        )
        made = subprocess.run(
            [PATCHBAY, "apikey", "create", "--org", "acme", "--name", "twilio", "--json"],
            env=env,
            check=True,
            capture_output=True,
        )
        key = json.loads(made.stdout)["key"]
        twiml = httpx.post(
            f"{base}/v1/twilio/voice", auth=("twilio", key), headers={"x-forwarded-proto": "https"}
        ).text
    scheme = "wss" if trusted else "ws"
    assert f'url="{scheme}://127.0.0.1:' in twiml, twiml


def test_two_workers_serve_one_port_and_stop_on_sigterm(
    served: tuple[subprocess.Popen[bytes], str, dict[str, str]], tmp_path: Path
) -> None:
    proc, base, env = served
    serving = _workers(proc.pid)
    assert len(serving) == 2, serving
    # Started with a soft open-file limit of 256, the server raised it to the hard limit, and
    # the workers inherited it (server/open_files.py).
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    assert {_open_file_limits(pid) for pid in {proc.pid, *serving}} == {(min(hard, CEILING), hard)}

    def cli(*args: str) -> str:
        done = subprocess.run([PATCHBAY, *args], env=env, capture_output=True, check=True)
        return done.stdout.decode()

    # Each worker listens on a socket of its own, in one SO_REUSEPORT group on the port, so
    # the kernel spreads connections over them (a shared socket hands each connection to
    # whichever worker is awake).
    port = int(base.rsplit(":", 1)[1])
    listening = _listening_inodes(port)
    assert len(listening) == 2
    held = [_socket_inodes(pid) & listening for pid in serving]
    assert sorted(len(h) for h in held) == [1, 1] and held[0] != held[1]

    cli("org", "create", "acme")
    key = cli("apikey", "create", "--org", "acme", "--name", "voice").splitlines()[0]

    async def sessions() -> list[str]:
        # Tokens minted by whichever worker took the request open sessions on whichever
        # worker takes the socket: the workers share one token secret.
        async with httpx.AsyncClient(base_url=base, headers={"authorization": f"Bearer {key}"}) as http:

            async def one() -> str:
                minted = await http.post("/v1/realtime/client_secrets", json={})
                assert minted.status_code == 200, minted.text
                token = minted.json()["value"]
                url = f"{base.replace('http', 'ws')}/v1/realtime?model=default&token={token}"
                async with websockets.connect(url) as ws:
                    first = orjson.loads(await ws.recv())
                return str(first["type"])

            return await asyncio.gather(*(one() for _ in range(24)))

    assert asyncio.run(sessions()) == ["session.created"] * 24

    # A worker that dies is replaced, and the replacement serves the dead one's socket.
    victim, survivor = sorted(serving)
    victim_socket = _socket_inodes(victim) & listening
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while not (replacements := _workers(proc.pid) - serving):
        assert time.monotonic() < deadline, "no replacement worker within 30 s"
        time.sleep(0.1)  # polling for the supervisor's restart, not standing in for it
    (replacement,) = replacements
    assert _socket_inodes(replacement) & listening == victim_socket
    serving = {survivor, replacement}

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    assert all(not Path(f"/proc/{p}").exists() for p in serving)
    lines = logged_lines(tmp_path)
    started = [line for line in lines if line.get("msg") == "patchbay started"]
    # Each worker built its own app, and says which worker it is on every line.
    # (The replacement may still be starting when SIGTERM comes.)
    assert {victim, survivor} <= {line["pid"] for line in started} <= {victim, *serving}
    # Both workers served sessions (all 24 on one worker by chance: p = 2 / 2**24).
    opened = [line["pid"] for line in lines if line.get("msg") == "realtime session opened"]
    assert len(opened) == 24 and set(opened) == {victim, survivor}


def test_the_open_file_limit_is_raised_to_the_hard_one_and_a_short_one_is_reported() -> None:
    # In a child process: the test process keeps its own limits.
    script = (
        "import resource, sys\n"
        "from server.open_files import raise_open_file_limit\n"
        "from server.settings import Settings\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (int(sys.argv[1]), int(sys.argv[2])))\n"
        "print(raise_open_file_limit(Settings(http_max_connections=int(sys.argv[3]))))\n"
        "print(resource.getrlimit(resource.RLIMIT_NOFILE)[0])\n"
    )
    small = Settings(http_max_connections=100)
    roomy = needed(small) + 100
    done = subprocess.run(
        [sys.executable, "-c", script, "256", str(roomy), "100"], capture_output=True, text=True, check=True
    )
    assert done.stdout.split() == [str(roomy), str(roomy)]
    assert "open-file limit" not in done.stderr

    # A hard limit below what the settings may open is raised to, and reported.
    short = needed(small) - 1
    done = subprocess.run(
        [sys.executable, "-c", script, "256", str(short), "100"], capture_output=True, text=True, check=True
    )
    assert done.stdout.split() == [str(short), str(short)]
    assert "the open-file limit is below what the settings may open" in done.stderr
