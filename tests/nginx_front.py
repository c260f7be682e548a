"""Debian's nginx on loopback in front of replicas, with deploy/nginx/patchbay.conf as shipped.

The shipped file is used as it is except for where it listens (a free loopback port), the
replicas it forwards to (one `server` line per replica, keeping the shipped parameters) and one
line a test needs: `X-Patchbay-Upstream`, the replica that answered (nginx's `$upstream_addr`),
so a test going through nginx knows which replica served each response. nginx runs in the
foreground as one process (`master_process off`) with its pid, logs and temporary files in the
test's directory, and is killed at the end.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import IN_CI
from tests.deploy_files import nginx_conf
from tests.emulators.harness import free_port

UPSTREAM_HEADER = "x-patchbay-upstream"


def nginx_binary() -> str:
    found = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None)
    if found is None:
        if IN_CI:
            pytest.fail("nginx is not installed (scripts/system-deps.sh test installs Debian's)")
        pytest.skip("nginx is not installed (make install-test installs Debian's)")
    return found


def front_conf(listen: int, replicas: list[int]) -> str:
    """deploy/nginx/patchbay.conf listening on `listen` and forwarding to the replica ports."""
    text = nginx_conf()
    block = re.search(r"(upstream patchbay \{)(.*?)(\})", text, re.S)
    assert block is not None
    shipped = re.findall(r"^(\s*)server\s+[\w.-]+:\d+(.*);$", block.group(2), re.M)
    assert shipped, "the shipped upstream names no replica"
    indent, params = shipped[0]
    servers = "".join(f"{indent}server 127.0.0.1:{port}{params};\n" for port in replicas)
    body = re.sub(r"^\s*server\s+[\w.-]+:\d+.*;\n", "", block.group(2), flags=re.M)
    text = text[: block.start(2)] + "\n" + servers + body.lstrip("\n") + text[block.end(2) :]
    assert "listen 80;" in text and "proxy_pass http://patchbay;" in text
    text = text.replace("listen 80;", f"listen 127.0.0.1:{listen};")
    return text.replace(
        "proxy_pass http://patchbay;",
        f"proxy_pass http://patchbay;\n        add_header {UPSTREAM_HEADER} $upstream_addr always;",
    )


@contextlib.contextmanager
def nginx_running(tmp_path: Path, replicas: list[int]) -> Iterator[str]:
    """nginx in front of the replica ports; its base URL once it forwards /readyz with a 200.
    Its error log is `tmp_path/nginx/error.log`."""
    binary = nginx_binary()
    home = tmp_path / "nginx"
    home.mkdir()
    port = free_port()
    (home / "patchbay.conf").write_text(front_conf(port, replicas))
    temp = "".join(
        f"  {kind}_temp_path {home}/{kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    (home / "nginx.conf").write_text(
        f"daemon off;\nmaster_process off;\npid {home}/nginx.pid;\nerror_log {home}/error.log warn;\n"
        f"events {{ worker_connections 512; }}\n"
        f"http {{\n  access_log off;\n{temp}  include {home}/patchbay.conf;\n}}\n"
    )
    log = home / "stderr.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [binary, "-p", str(home), "-e", str(home / "error.log"), "-c", str(home / "nginx.conf")],
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, log.read_text() + (home / "error.log").read_text()
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            assert time.monotonic() < deadline, "nginx did not forward /readyz within 30 s"
            time.sleep(0.05)  # polling for readiness, not standing in for it
        yield url
    finally:
        proc.kill()
        proc.wait(10)
