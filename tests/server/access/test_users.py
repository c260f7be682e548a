"""People: invites, argon2 passwords, session cookies with CSRF, signing out everywhere."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from fastapi import FastAPI
from sqlalchemy import select

from server.access.tables import User
from server.cli import cli
from server.services import Services
from tests.server.access.conftest import OPERATOR, Orgs

PASSWORD = "correct horse battery staple"


def browser(app: FastAPI, origin: str = "https://patchbay.test") -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=("198.51.100.7", 5000)), base_url=origin
    )


async def invite(client: httpx.AsyncClient, org: str, email: str, role: str) -> str:
    r = await client.post(
        f"/admin/v1/orgs/{org}/invites", json={"email": email, "role": role}, headers=OPERATOR
    )
    assert r.status_code == 201, r.text
    link = r.json()["link"]
    assert "#invite=pbi-" in link
    return link.split("#invite=", 1)[1]


async def sign_up(
    app: FastAPI, client: httpx.AsyncClient, org: str, email: str, role: str
) -> tuple[httpx.AsyncClient, str]:
    token = await invite(client, org, email, role)
    person = browser(app)
    preview = await person.post("/auth/invite", json={"token": token})
    assert (
        preview.status_code == 200 and preview.json()["role"] == role and preview.json()["account"] == "new"
    )
    accepted = await person.post("/auth/invite/accept", json={"token": token, "password": PASSWORD})
    assert accepted.status_code == 200, accepted.text
    return person, accepted.json()["csrf_token"]


async def test_an_invited_person_signs_in_and_works_within_their_role(
    app: FastAPI, client: httpx.AsyncClient, orgs: Orgs
) -> None:
    token = await invite(client, orgs.a["id"], "Ada@Example.com", "admin")
    person = browser(app)
    accepted = await person.post("/auth/invite/accept", json={"token": token, "password": PASSWORD})
    assert accepted.status_code == 200, accepted.text
    cookie = accepted.headers["set-cookie"].lower()
    assert "patchbay_session=pbs-" in cookie
    for flag in ("httponly", "secure", "samesite=strict", "max-age=43200", "path=/"):
        assert flag in cookie, flag
    csrf = accepted.json()["csrf_token"]
    # The link works once.
    again = await browser(app).post("/auth/invite/accept", json={"token": token, "password": PASSWORD})
    assert again.status_code == 401

    me = (await person.get("/admin/v1/me")).json()
    assert me["kind"] == "user" and me["label"] == "ada@example.com" and me["csrf_token"] == csrf
    assert [(o["id"], o["role"]) for o in me["orgs"]] == [(orgs.a["id"], "admin")]
    assert "configure" in me["orgs"][0]["permissions"] and "members" not in me["orgs"][0]["permissions"]

    # A state change needs the CSRF token, and must not come from another site.
    body = {"name": "from-the-ui"}
    assert (await person.post(f"/admin/v1/orgs/{orgs.a['id']}/agents", json=body)).status_code == 403
    cross = await person.post(
        f"/admin/v1/orgs/{orgs.a['id']}/agents",
        json=body,
        headers={"x-csrf-token": csrf, "origin": "https://evil.example"},
    )
    assert cross.status_code == 403 and cross.json()["error"]["type"] == "csrf_failed"
    site = await person.post(
        f"/admin/v1/orgs/{orgs.a['id']}/agents",
        json=body,
        headers={"x-csrf-token": csrf, "sec-fetch-site": "cross-site"},
    )
    assert site.status_code == 403
    ok = await person.post(
        f"/admin/v1/orgs/{orgs.a['id']}/agents",
        json=body,
        headers={"x-csrf-token": csrf, "origin": "https://patchbay.test"},
    )
    assert ok.status_code == 201, ok.text
    # Another org is invisible; owner-only actions are refused.
    assert (await person.get(f"/admin/v1/orgs/{orgs.b['id']}/agents")).status_code == 404
    assert (
        await person.post(
            f"/admin/v1/orgs/{orgs.a['id']}/invites",
            json={"email": "x@y.example", "role": "owner"},
            headers={"x-csrf-token": csrf},
        )
    ).status_code == 403

    audit = (
        await client.get(
            f"/admin/v1/orgs/{orgs.a['id']}/audit", params={"action": "agent."}, headers=OPERATOR
        )
    ).json()
    assert audit[0]["actor"] == "ada@example.com" and audit[0]["address"] == "198.51.100.7"


async def test_passwords_are_argon2_and_sign_in_errors_do_not_say_which_part_was_wrong(
    app: FastAPI, client: httpx.AsyncClient, orgs: Orgs
) -> None:
    await sign_up(app, client, orgs.a["id"], "bob@example.com", "viewer")
    services: Services = app.state.services
    async with services.db.session() as s:
        stored = await s.scalar(select(User.password_hash).where(User.email == "bob@example.com"))
    assert stored is not None and stored.startswith("$argon2id$") and PASSWORD not in stored
    wrong_password = await browser(app).post(
        "/auth/login", json={"email": "bob@example.com", "password": "not the password"}
    )
    wrong_email = await browser(app).post(
        "/auth/login", json={"email": "nobody@example.com", "password": PASSWORD}
    )
    assert wrong_password.status_code == wrong_email.status_code == 401
    # The same answer but for the request id, which each response carries as its own.
    answers = [r.json()["error"] for r in (wrong_password, wrong_email)]
    assert [a.pop("request_id") for a in answers] == [
        r.headers["x-request-id"] for r in (wrong_password, wrong_email)
    ]
    assert answers[0] == answers[1]
    signed_in = await browser(app).post(
        "/auth/login", json={"email": "BOB@example.com ", "password": PASSWORD}
    )
    assert signed_in.status_code == 200


async def test_short_passwords_and_bad_emails_are_refused_with_reasons(
    app: FastAPI, client: httpx.AsyncClient, orgs: Orgs
) -> None:
    bad = await client.post(
        f"/admin/v1/orgs/{orgs.a['id']}/invites",
        json={"email": "not-an-email", "role": "viewer"},
        headers=OPERATOR,
    )
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "email"
    token = await invite(client, orgs.a["id"], "cy@example.com", "viewer")
    short = await browser(app).post("/auth/invite/accept", json={"token": token, "password": "short"})
    assert short.status_code == 400 and short.json()["error"]["param"] == "password"


async def test_sign_out_everywhere_ends_every_session(
    app: FastAPI, client: httpx.AsyncClient, orgs: Orgs
) -> None:
    laptop, csrf = await sign_up(app, client, orgs.a["id"], "dee@example.com", "owner")
    phone = browser(app)
    assert (
        await phone.post("/auth/login", json={"email": "dee@example.com", "password": PASSWORD})
    ).status_code == 200
    assert (await phone.get("/admin/v1/me")).status_code == 200
    assert (await laptop.post("/auth/logout-all")).status_code == 403  # no CSRF token
    assert (await laptop.post("/auth/logout-all", headers={"x-csrf-token": csrf})).status_code == 204
    assert (await phone.get("/admin/v1/me")).status_code == 401
    assert (await laptop.get("/admin/v1/me")).status_code == 401


async def test_an_existing_account_joins_a_second_org_with_its_password(
    app: FastAPI, client: httpx.AsyncClient, orgs: Orgs
) -> None:
    person, _ = await sign_up(app, client, orgs.a["id"], "eve@example.com", "viewer")
    token = await invite(client, orgs.b["id"], "eve@example.com", "billing")
    assert (await browser(app).post("/auth/invite", json={"token": token})).json()["account"] == "existing"
    wrong = await browser(app).post(
        "/auth/invite/accept", json={"token": token, "password": "a different password"}
    )
    assert wrong.status_code == 401
    joined = await person.post("/auth/invite/accept", json={"token": token, "password": PASSWORD})
    assert joined.status_code == 200
    me = (await person.get("/admin/v1/me")).json()
    assert sorted((o["name"], o["role"]) for o in me["orgs"]) == [("alpha", "viewer"), ("beta", "billing")]


def test_the_cli_invites_and_lists_members(
    tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATCHBAY_DATABASE_URL", db_url)
    monkeypatch.setenv("PATCHBAY_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("PATCHBAY_PUBLIC_URL", "https://patchbay.example.com")
    runner = CliRunner()
    assert runner.invoke(cli, ["db", "upgrade"]).exit_code == 0
    assert runner.invoke(cli, ["org", "create", "acme"]).exit_code == 0
    made = runner.invoke(
        cli, ["user", "invite", "--org", "acme", "--email", "fay@example.com", "--role", "owner", "--json"]
    )
    assert made.exit_code == 0, made.output
    assert json.loads(made.output)["link"].startswith("https://patchbay.example.com/ui/#invite=pbi-")
    listed = runner.invoke(cli, ["user", "list", "--org", "acme", "--json"])
    assert listed.exit_code == 0 and json.loads(listed.output) == []
    missing = runner.invoke(cli, ["user", "remove", "--org", "acme", "usr_nope", "--json"])
    assert missing.exit_code == 1


async def test_another_site_cannot_sign_a_browser_in(
    app: FastAPI, client: httpx.AsyncClient, orgs: Orgs
) -> None:
    await sign_up(app, client, orgs.a["id"], "gus@example.com", "viewer")
    body = {"email": "gus@example.com", "password": PASSWORD}
    for headers in ({"origin": "https://evil.example"}, {"sec-fetch-site": "cross-site"}):
        refused = await browser(app).post("/auth/login", json=body, headers=headers)
        assert refused.status_code == 403 and "set-cookie" not in refused.headers, headers
    same = await browser(app).post(
        "/auth/login", json=body, headers={"origin": "https://patchbay.test", "sec-fetch-site": "same-origin"}
    )
    assert same.status_code == 200
