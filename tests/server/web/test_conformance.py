"""The Conformance page in real headless Chromium: empty state, a run from the page (loading,
then results as a table and per-model charts), the gates toggle, and a run that fails."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.emulators.conformance_models import Sloppy, good
from tests.emulators.harness import ServedApp
from tests.emulators.openai import OpenAIEmulator
from tests.server.web.conftest import Live, Seen
from tests.server.web.test_journeys import make_org, sign_in_with_link

KEY = "sk-lab-ui-0123456789"
MODELS = [{"id": "llama", "capabilities": ["text", "tools", "json"]}]


@pytest.fixture
def labs() -> Iterator[tuple[str, str]]:
    with (
        ServedApp(OpenAIEmulator("compat", api_key=KEY, models=("llama",), responder=good)) as g,
        ServedApp(OpenAIEmulator("compat", api_key=KEY, models=("llama",), responder=Sloppy())) as s,
    ):
        yield g.url + "/v1", s.url + "/v1"


async def test_run_results_charts_gates_and_failure(
    live: Live, page_and_seen: tuple[Any, Seen], labs: tuple[str, str]
) -> None:
    page, seen = page_and_seen
    org_id = await make_org(live, "acme")
    await make_org(live, "bare")
    async with live.admin() as admin:
        for name, url in zip(("good", "sloppy"), labs, strict=True):
            body = {
                "provider": "openai_compatible",
                "name": name,
                "base_url": url,
                "key": KEY,
                "models": MODELS,
            }
            created = await admin.post(f"/orgs/{org_id}/connections", json=body)
            assert created.status_code == 201, created.text

    await sign_in_with_link(page, live)
    await page.get_by_role("link", name="Conformance").click()
    await page.get_by_role("heading", name="Conformance", level=1).wait_for()
    await page.get_by_text("No results yet.").wait_for()
    await page.get_by_text("Gates are off.").wait_for()

    await page.get_by_role("button", name="Run the suite").click()
    await (
        page.get_by_role("status")
        .filter(has_text="Measured 6 model capabilities; 1 below threshold.")
        .wait_for()
    )
    gates = await page.locator("table.conformance tbody tr").evaluate_all(
        "rs => rs.map(r => [r.cells[0].textContent, r.dataset.capability, r.dataset.gate])"
    )
    assert sorted(gates) == sorted(
        [
            ["openai_compatible:good/llama", "tools", "pass"],
            ["openai_compatible:good/llama", "json", "pass"],
            ["openai_compatible:good/llama", "refusal", "pass"],
            ["openai_compatible:sloppy/llama", "tools", "fail"],
            # One run: the sloppy model's fifth tools request goes wrong; its fifth JSON one never comes.
            ["openai_compatible:sloppy/llama", "json", "pass"],
            ["openai_compatible:sloppy/llama", "refusal", "pass"],
        ]
    )
    charts = page.locator("figure.chart")
    assert await charts.count() == 3
    rates = (
        await charts.nth(0)
        .locator("g.row")
        .evaluate_all("gs => gs.map(g => [g.dataset.label, g.querySelector('rect')?.dataset.value])")
    )
    assert ["openai_compatible:good/llama · tools", "1"] in rates
    await page.get_by_role("img", name="Time to first token per model (median)").wait_for()

    await page.get_by_role("button", name="Turn gates on").click()
    await page.get_by_text("Gates are on.").wait_for()
    async with live.admin() as admin:
        assert (await admin.get(f"/orgs/{org_id}/conformance")).json()["conformance_gates"] is True

    # An org with nothing to measure: the API's reason, and how to fix it, on the page.
    await page.get_by_label("Organisation").select_option(label="bare")
    await page.get_by_text("No results yet.").wait_for()
    await page.get_by_role("button", name="Run the suite").click()
    await page.get_by_role("alert").filter(has_text="nothing to measure").wait_for()
    assert not seen.errors
