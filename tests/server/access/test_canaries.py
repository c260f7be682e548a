"""Access credentials leak nowhere: admin tokens, passwords, session cookies and invite secrets
are absent from logs (at DEBUG, SQL included), responses after the one that issues them, the
audit log and every byte of the database."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from server.services import Services
from tests.providers.vault.canary import LeakReport, captured_logs, scan_database
from tests.server.access.conftest import OPERATOR, Orgs

PASSWORD = "canary-password-7f3a9c1e5b"


async def test_access_secrets_never_leak(app: FastAPI, client: httpx.AsyncClient, orgs: Orgs) -> None:
    services: Services = app.state.services
    report = LeakReport()
    browser = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://patchbay.test")
    with captured_logs() as logs:
        made = await client.post(
            f"/admin/v1/orgs/{orgs.a['id']}/admin-tokens",
            json={"role": "owner", "name": "ci"},
            headers=OPERATOR,
        )
        token = made.json()["token"]
        invited = await client.post(
            f"/admin/v1/orgs/{orgs.a['id']}/invites",
            json={"email": "ada@example.com", "role": "admin"},
            headers={"authorization": f"Bearer {token}"},
        )
        invite = invited.json()["link"].split("#invite=", 1)[1]
        accepted = await browser.post("/auth/invite/accept", json={"token": invite, "password": PASSWORD})
        cookie = accepted.cookies["patchbay_session"]
        bodies = [
            (await browser.get("/admin/v1/me")).text,
            (await client.get(f"/admin/v1/orgs/{orgs.a['id']}/admin-tokens", headers=OPERATOR)).text,
            (await client.get(f"/admin/v1/orgs/{orgs.a['id']}/audit", headers=OPERATOR)).text,
            (await client.get(f"/admin/v1/orgs/{orgs.a['id']}/members", headers=OPERATOR)).text,
            (
                await browser.post(
                    "/auth/login", json={"email": "ada@example.com", "password": PASSWORD + "x"}
                )
            ).text,
            (await client.get("/admin/v1/orgs", headers={"authorization": f"Bearer {token}x"})).text,
        ]
    canaries = [token, PASSWORD, cookie, invite]
    assert all(len(c) > 20 for c in canaries)
    report.check_text("logs", logs.getvalue(), canaries)
    for i, body in enumerate(bodies):
        report.check_text(f"response {i}", body, canaries)
    rows = await scan_database(services.db, report, canaries)
    assert rows > 0
    assert report.hits == []
