"""The provider fault matrix: every error class × wire protocol × stream/non-stream × before/after
the first output, through a real Patchbay, against each vendor's emulator.

The org's chat chain is the protocol's model first, then `mistral/mistral-small-latest` (an
always-healthy OpenAI-wire emulator). For each cell the primary plays its fault for every
request; the test records what the client got, whether the fallback served, how many tries the
primary saw, and the primary profile's cooldown or disable afterwards (read from the cooldown
store, as the window length: the router's clock is a fake, so retries do not sleep). The rows
must equal docs/reliability.md's table (tests/server/v1/fault_matrix.py); regenerate it with
`PATCHBAY_RENDER_FAULT_MATRIX=1`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from providers.contract import ErrorClass
from providers.vault.secret import Secret
from routing.cooldown import ProfileState
from tests.emulators.anthropic import AnthropicEmulator
from tests.emulators.gemini import GeminiEmulator
from tests.emulators.harness import ServedGroup
from tests.routing.fakes import FakeWallClock
from tests.server.v1 import fault_matrix
from tests.server.v1.conftest import Patchbay, Upstreams
from tests.server.v1.fault_injections import PROTOCOLS, Fault, Phase, Protocol, fault
from tests.server.v1.fault_matrix import Row

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)

ANTHROPIC_KEY = "sk-ant-CANARY-faults-0123456789"
GEMINI_KEY = "AIzaSyCANARY-faults-0123456789abcdef"
FALLBACK = "mistral:default"
PRIMARY: dict[Protocol, tuple[str, str]] = {
    "openai-chat": ("openai/gpt-4o-mini", "openai:main"),
    "anthropic-messages": ("anthropic/claude-sonnet-4-5", "anthropic:default"),
    "gemini-generate": ("gemini/gemini-2.5-flash", "gemini:default"),
}
ASK = {"model": "default", "messages": [{"role": "user", "content": "hi"}]}


class Vendors(ServedGroup):
    def __init__(self) -> None:
        self.anthropic = AnthropicEmulator(api_key=ANTHROPIC_KEY)
        self.gemini = GeminiEmulator(api_key=GEMINI_KEY)
        super().__init__(self.anthropic.app, self.gemini.app)


@pytest.fixture(scope="module")
def vendors() -> Iterator[Vendors]:
    with Vendors() as v:
        yield v


async def _route(patchbay: Patchbay, vendors: Vendors, protocol: Protocol) -> None:
    svc = patchbay.services
    async with svc.db.session() as s:
        conns = svc.connections()
        if protocol == "anthropic-messages":
            await conns.create(
                s, patchbay.org_id, provider="anthropic", base_url=vendors.served[0].url,
                key=Secret(ANTHROPIC_KEY),
            )  # fmt: skip
        if protocol == "gemini-generate":
            await conns.create(
                s, patchbay.org_id, provider="gemini", base_url=vendors.served[1].url,
                key=Secret(GEMINI_KEY),
            )  # fmt: skip
        chain = [PRIMARY[protocol][0], "mistral/mistral-small-latest"]
        await svc.agents().set_org_routing(s, patchbay.org_id, chains={"chat": chain})
    svc.config_changed(patchbay.org_id)


def _emulator(protocol: Protocol, upstreams: Upstreams, vendors: Vendors) -> Any:
    if protocol == "openai-chat":
        return upstreams.openai
    return vendors.anthropic if protocol == "anthropic-messages" else vendors.gemini


def _chat_requests(emulator: Any) -> int:
    requests = getattr(emulator, "chat_requests", None)
    if requests is None:
        requests = [r for r in emulator.requests if r.method == "POST"]
    return len(requests)


def _client_result(response: httpx.Response, stream: bool) -> str:
    if response.status_code != 200:
        error = response.json()["error"]
        return f"HTTP {response.status_code} `{error['code'] or error['type']}`"
    if not stream:
        finish = response.json()["choices"][0]["finish_reason"]
        return "200" if finish == "stop" else f"200, finish `{finish}`"
    text, finish, failed = "", None, None
    for line in response.text.splitlines():
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        chunk = orjson.loads(line[6:])
        if "error" in chunk:
            failed = chunk["error"]["code"] or chunk["error"]["type"]
            continue
        for choice in chunk.get("choices") or ():
            text += choice["delta"].get("content") or ""
            finish = choice.get("finish_reason") or finish
    said = "text, then " if text else ""
    if failed is not None:
        return f"200, {said}error event `{failed}`"
    return "200" if finish == "stop" else f"200, {said}finish `{finish}`"


def _profile(state: ProfileState | None) -> str:
    if state is None or state.last_failure_at is None:
        return "untouched" if state is None or not state.last_used else "healthy"
    start = state.last_failure_at
    if state.disabled_until is not None:
        return f"disabled `{state.disabled_reason}` {state.disabled_until - start:g} s"
    if state.cooldown_until is not None:
        scope = " (this model)" if state.cooldown_model else ""
        return f"cooldown `{state.cooldown_reason}` {state.cooldown_until - start:g} s{scope}"
    return "failure counted, no window"


async def _observe(
    patchbay: Patchbay, emulator: Any, fallback: Any, protocol: Protocol, cell: Fault, stream: bool
) -> tuple[str, str, str, str]:
    gateway = patchbay.services.gateway
    assert gateway is not None
    for profile in (PRIMARY[protocol][1], FALLBACK):
        await gateway.cooldowns.clear(patchbay.org_id, profile)
    emulator.reset()
    fallback.reset()
    emulator.always(cell.scenario)
    async with patchbay.client() as c:
        response = await c.post("/v1/chat/completions", json={**ASK, "stream": stream})
    states = await gateway.cooldowns.get_many(patchbay.org_id, [PRIMARY[protocol][1]])
    served_by_fallback = _chat_requests(fallback) > 0 and response.status_code == 200
    return (
        _client_result(response, stream),
        "yes" if served_by_fallback else "no",
        str(_chat_requests(emulator)),
        _profile(states.get(PRIMARY[protocol][1])),
    )


@pytest.mark.parametrize("stream", [False, True], ids=["non-stream", "stream"])
@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_fault_matrix(
    patchbay: Patchbay, upstreams: Upstreams, vendors: Vendors, protocol: Protocol, stream: bool
) -> None:
    gateway = patchbay.services.gateway
    assert gateway is not None
    gateway.router.executor.runner.clock = FakeWallClock()
    await _route(patchbay, vendors, protocol)
    emulator = _emulator(protocol, upstreams, vendors)
    mode = "stream" if stream else "non-stream"
    rows: list[Row] = []
    for error in ErrorClass:
        for phase in ("before", "after"):
            cell = fault(protocol, error, stream=stream, phase=phase)
            if cell is None:
                continue
            observed = await _observe(patchbay, emulator, upstreams.mistral, protocol, cell, stream)
            rows.append(Row(error.value, mode, _phase(phase), cell.label, *observed))
    emulator.reset()
    if os.environ.get("PATCHBAY_RENDER_FAULT_MATRIX") == "1":
        fault_matrix.rewrite(protocol, mode, rows)
    documented = [r for r in fault_matrix.documented(protocol) if r.mode == mode]
    assert fault_matrix.render(rows) == fault_matrix.render(documented), (
        "docs/reliability.md's fault matrix differs from this run; "
        "rerun with PATCHBAY_RENDER_FAULT_MATRIX=1 and review the diff"
    )


def _phase(phase: Phase) -> str:
    return f"{phase} output"
