"""Issue 16's acceptance, end to end on both databases: the harness scores a good, a sloppy and
a refusing model (emulated, deterministically scripted) apart; with gates on a tools request
routes past the sloppy one to the good one with `skipped:gate:tools`; results survive a restart
(a fresh registry over the same database); a suite version bump makes them stale."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from types import MappingProxyType
from typing import Any

import httpx
import pytest

from providers.contract import Capability
from providers.vault.secret import Secret
from routing.conformance import suite as suites
from routing.registry import Registry
from server import accounts
from tests.emulators.conformance_models import Sloppy, good, refusing
from tests.emulators.harness import ServedGroup
from tests.emulators.openai import OpenAIEmulator
from tests.server.conftest import ADMIN_TOKEN
from tests.server.v1.conftest import Patchbay

KEY = "sk-lab-conformance-0123456789"
OPERATOR = {"authorization": f"Bearer {ADMIN_TOKEN}"}
MODELS = [{"id": "llama", "capabilities": ["text", "tools", "json"]}]
TOOLS_CHAT = {
    "model": "default",
    "max_tokens": 50,
    "messages": [{"role": "user", "content": "weather in Paris?"}],
    "tools": [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ],
}


class Labs(ServedGroup):
    def __init__(self) -> None:
        self.good = OpenAIEmulator("compat", api_key=KEY, models=("llama",), responder=good)
        self.sloppy = OpenAIEmulator("compat", api_key=KEY, models=("llama",), responder=Sloppy())
        self.refusing = OpenAIEmulator("compat", api_key=KEY, models=("llama",), responder=refusing)
        super().__init__(self.good, self.sloppy, self.refusing)


@pytest.fixture
def labs() -> Iterator[Labs]:
    with Labs() as served:
        yield served


async def _lab_org(patchbay: Patchbay, labs: Labs) -> tuple[str, str]:
    svc = patchbay.services
    async with svc.db.session() as s:
        org = await accounts.create_org(s, "Lab")
        for name, served in zip(
            ("sloppy", "refusing", "good"), (labs.served[1], labs.served[2], labs.served[0]), strict=True
        ):
            await svc.connections().create(
                s,
                org.id,
                provider="openai_compatible",
                name=name,
                base_url=served.url + "/v1",
                key=Secret(KEY),
                models=MODELS,
            )
        await svc.agents().set_org_routing(
            s, org.id, chains={"chat": ["sloppy/llama", "refusing/llama", "good/llama"]}
        )
        key = await accounts.create_api_key(s, org.id, name="lab")
    return org.id, key.key


def _by(entries: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(e["connection"].split(":")[1], e["capability"]): e for e in entries}


async def test_the_harness_scores_models_apart_and_gates_route_past_the_sloppy_one(
    patchbay: Patchbay, labs: Labs, monkeypatch: pytest.MonkeyPatch
) -> None:
    org_id, key = await _lab_org(patchbay, labs)
    async with httpx.AsyncClient(base_url=patchbay.url, headers=OPERATOR, timeout=60) as admin:
        ran = await admin.post(f"/admin/v1/orgs/{org_id}/conformance/runs", json={"runs": 3})
        assert ran.status_code == 201, ran.text
        scores = _by(ran.json()["entries"])

        good_tools, sloppy_tools, refusing_tools = (
            scores[(n, "tools")] for n in ("good", "sloppy", "refusing")
        )
        assert (good_tools["cases"], good_tools["passed"], good_tools["gate"]) == (18, 18, "pass")
        # Every fifth tools request goes wrong: 3 of 18, one of each fault.
        assert (sloppy_tools["passed"], sloppy_tools["gate"]) == (15, "fail")
        assert sloppy_tools["failures"] == {"broken_json": 1, "unknown_tool": 1, "schema": 1}
        assert (refusing_tools["passed"], refusing_tools["gate"], refusing_tools["failures"]) == (
            0,
            "fail",
            {"refused": 18},
        )
        assert scores[("good", "json")]["gate"] == "pass" and scores[("sloppy", "json")]["gate"] == "fail"
        assert scores[("sloppy", "json")]["failures"] == {"schema": 2}
        # Refusals arrive classified, from the refusing and the good model alike.
        assert scores[("refusing", "refusal")]["gate"] == scores[("good", "refusal")]["gate"] == "pass"
        assert all(
            e["threshold"] == {"tools": 0.95, "json": 0.98, "refusal": 0.9}[e["capability"]]
            for e in scores.values()
        )
        assert ("good", "vision") not in scores  # not claimed, not asked

        async with patchbay.client(key) as c:
            before = await c.post("/v1/chat/completions", json=TOOLS_CHAT)
        assert before.headers["x-patchbay-route"] == "openai_compatible:sloppy/llama=served"

        on = await admin.patch(f"/admin/v1/orgs/{org_id}", json={"conformance_gates": True})
        assert on.status_code == 200 and on.json()["conformance_gates"] is True, on.text
        async with patchbay.client(key) as c:
            gated = await c.post("/v1/chat/completions", json=TOOLS_CHAT)
        assert gated.status_code == 200, gated.text
        assert gated.headers["x-patchbay-route"] == (
            "openai_compatible:sloppy/llama=skipped:gate:tools;"
            "openai_compatible:refusing/llama=skipped:gate:tools;"
            "openai_compatible:good/llama=served"
        )

    # A restart: a fresh registry over the same database builds the same gates.
    fresh = Registry(patchbay.services.db.sessions, patchbay.services.vault)
    gates = (await fresh.get(org_id)).routing.gates
    ids = {c.name: c.connection_id for c in (await fresh.get(org_id)).routing.all_connections()}
    needs = frozenset({Capability.TEXT, Capability.TOOLS})
    assert gates.enabled
    assert gates.blocked(ids["good"], "openai_compatible:good", "llama", needs) is None
    assert gates.blocked(ids["sloppy"], "openai_compatible:sloppy", "llama", needs) is Capability.TOOLS

    # A new suite version: what was measured is stale, and gates stop trusting it.
    bumped = dataclasses.replace(suites.CORE, version=suites.CORE.version + 1)
    monkeypatch.setattr(suites, "SUITES", MappingProxyType({bumped.name: bumped}))
    async with httpx.AsyncClient(base_url=patchbay.url, headers=OPERATOR, timeout=10) as admin:
        report = (await admin.get(f"/admin/v1/orgs/{org_id}/conformance")).json()
    assert report["results"] and {r["gate"] for r in report["results"]} == {"stale"}
    restarted = Registry(patchbay.services.db.sessions, patchbay.services.vault)
    assert (await restarted.get(org_id)).routing.gates.blocked(
        ids["good"], "openai_compatible:good", "llama", needs
    ) is Capability.TOOLS
