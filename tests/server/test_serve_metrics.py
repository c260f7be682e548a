"""`/metrics` under `patchbay serve --workers 2`: known traffic over both workers, counted once
each and summed, whichever worker answers the scrape."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import pytest

from tests.emulators.harness import ServedApp
from tests.emulators.openai import OpenAIEmulator
from tests.server.metrics_text import samples, total, value
from tests.server.test_serve import _serve, _workers, logged_lines

pytestmark = pytest.mark.slow

UPSTREAM_KEY = "sk-CANARY-upstream-0123456789abcdef"
ADMIN = "admin-metrics-token-0123456789abcdefghij"
MASTER_KEY = "v1:QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWY="
REQUESTS = 40


def test_two_workers_report_the_sum_of_their_counts(tmp_path: Path) -> None:
    emulator = OpenAIEmulator("openai", api_key=UPSTREAM_KEY, models=("gpt-4o-mini",))
    env_extra = {
        "PATCHBAY_ADMIN_TOKEN": ADMIN,
        "PATCHBAY_MASTER_KEY": MASTER_KEY,
        "PATCHBAY_ALLOW_PRIVATE_BASE_URLS": "true",
        "PATCHBAY_ALLOW_PLAIN_HTTP_BASE_URLS": "true",
    }
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "counter_999999.db").write_bytes(b"left by an earlier run")
    with ServedApp(emulator) as upstream, _serve(tmp_path, "--workers", "2", env_extra=env_extra) as running:
        proc, base, _ = running
        # An earlier run's values are gone: the directory is emptied before the workers start.
        assert not (tmp_path / "metrics" / "counter_999999.db").exists()

        # Through the admin API: a CLI process per step would cost this test more than its traffic.
        with httpx.Client(base_url=f"{base}/admin/v1", headers={"authorization": f"Bearer {ADMIN}"}) as admin:
            org = admin.post("/orgs", json={"name": "acme"}).json()["id"]
            added = admin.post(
                f"/orgs/{org}/connections",
                json={"provider": "openai", "base_url": f"{upstream.url}/v1", "key": UPSTREAM_KEY},
            )
            assert added.status_code == 201, added.text
            made = admin.post(f"/orgs/{org}/api-keys", json={"name": "metrics"})
            assert made.status_code == 201, made.text
        key = made.json()["key"]
        workers = _workers(proc.pid)
        assert len(workers) == 2

        chat = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
        tokens = 0
        for _ in range(REQUESTS):
            # A connection per request: the kernel spreads connections over both workers' sockets.
            got = httpx.post(
                f"{base}/v1/chat/completions", json=chat, headers={"authorization": f"Bearer {key}"}
            )
            assert got.status_code == 200, got.text
            tokens += got.json()["usage"]["completion_tokens"]
        assert len(emulator.chat_requests) == REQUESTS

        scrapes = [
            httpx.get(f"{base}/metrics", headers={"authorization": f"Bearer {ADMIN}"}) for _ in range(4)
        ]
        for scrape in scrapes:
            assert scrape.status_code == 200, scrape.text
            found = samples(scrape.text)
            chat_route = {"method": "POST", "route": "/v1/chat/completions", "status": "200"}
            assert value(found, "patchbay_http_requests_total", **chat_route) == REQUESTS
            served = total(found, "patchbay_upstream_attempts_total", provider="openai", outcome="served")
            assert served == REQUESTS
            output = value(
                found, "patchbay_tokens_total", billing_source="byok", segment="llm", direction="output"
            )
            assert output == tokens
            latency = value(
                found, "patchbay_http_request_duration_seconds_count", route="/v1/chat/completions"
            )
            assert latency == REQUESTS
            assert UPSTREAM_KEY not in scrape.text and ADMIN not in scrape.text and key not in scrape.text
        assert httpx.get(f"{base}/metrics").status_code == 401

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        lines = logged_lines(tmp_path)
    # The sums above are over both workers: each served some of the requests.
    by_worker = [line["pid"] for line in lines if line.get("path") == "/v1/chat/completions"]
    assert len(by_worker) == REQUESTS and set(by_worker) == workers
