"""The UI mount (static files, security headers, no external or inline code) and the admin API
additions the UI relies on: the catalog, reading the routing matrix, errors naming their field."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import httpx

from routing.intents import Intent
from server.ui import WEB_DIR


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.script_text = ""
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.script_text += data.strip()


async def test_root_redirects_and_every_ui_response_carries_the_security_headers(
    client: httpx.AsyncClient,
) -> None:
    root = await client.get("/")
    assert root.status_code == 307 and root.headers["location"] == "/ui/"
    for path, kind in (("/ui/", "text/html"), ("/ui/app.css", "text/css"), ("/ui/js/app.js", "javascript")):
        answer = await client.get(path)
        assert answer.status_code == 200, path
        assert kind in answer.headers["content-type"]
        csp = answer.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["referrer-policy"] == "no-referrer"
        assert answer.headers["x-frame-options"] == "DENY"
    assert (await client.get("/ui/js/nothing-here.js")).status_code == 404


async def test_only_the_playground_is_allowed_the_microphone(client: httpx.AsyncClient) -> None:
    playground = await client.get("/ui/playground")
    admin = await client.get("/ui/")
    assert playground.status_code == 200 and "text/html" in playground.headers["content-type"]
    assert "microphone=(self)" in playground.headers["permissions-policy"]
    assert "camera=()" in playground.headers["permissions-policy"]
    assert "microphone=()" in admin.headers["permissions-policy"]
    for name in ("content-security-policy", "x-frame-options", "referrer-policy", "cache-control"):
        assert playground.headers[name] == admin.headers[name], name


def test_the_pages_have_no_inline_code_and_no_external_asset() -> None:
    for page, entry in (("index.html", "js/app.js"), ("playground.html", "js/playground.js")):
        parser = _Tags()
        parser.feed((WEB_DIR / page).read_text())
        assert parser.script_text == ""
        scripts = [a for t, a in parser.tags if t == "script"]
        assert scripts == [{"type": "module", "src": entry}]
        for tag, attrs in parser.tags:
            assert "style" not in attrs, tag
            assert not [a for a in attrs if a.startswith("on")], tag
            for ref in (attrs.get("src"), attrs.get("href")):
                assert ref is None or not re.match(r"^(https?:)?//", ref), ref
    # Modules import only siblings, or the browser voice client this server serves at /sdk/;
    # the stylesheet pulls in nothing.
    for js in (WEB_DIR / "js").glob("*.js"):
        for spec in re.findall(r"""^import .* from "([^"]+)";""", js.read_text(), flags=re.M):
            assert spec.startswith("./") or spec == "/sdk/patchbay-voice.js", (js.name, spec)
        code = "\n".join(line for line in js.read_text().splitlines() if not line.lstrip().startswith("//"))
        assert "innerHTML" not in code and "eval(" not in code, js.name
    css = (WEB_DIR / "app.css").read_text()
    assert "@import" not in css and "url(" not in css


async def test_every_input_has_a_label(client: httpx.AsyncClient) -> None:
    for path in ("/ui/", "/ui/playground"):
        parser = _Tags()
        parser.feed((await client.get(path)).text)
        ids = {a["id"] for t, a in parser.tags if t in ("input", "select", "textarea")}
        labelled = {a["for"] for t, a in parser.tags if t == "label"}
        assert ids and ids <= labelled, path


async def test_catalog_lists_what_an_org_can_connect_and_route(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    assert (await client.get("/admin/v1/catalog")).status_code == 401
    body = (await client.get("/admin/v1/catalog", headers=admin_headers)).json()
    providers = {p["id"]: p for p in body["providers"]}
    assert "internal" not in providers
    assert providers["openai_compatible"] | {"display_name": ""} == {
        "id": "openai_compatible",
        "display_name": "",
        "default_base_url": None,
        "key_required": False,
        "custom": True,
    }
    assert (
        providers["openai"]["default_base_url"] == "https://api.openai.com/v1"
        and providers["openai"]["key_required"]
    )
    assert [i["id"] for i in body["intents"]] == [i.value for i in Intent]
    vision = {"id": "vision", "capabilities": ["text", "vision"], "builtin": None, "builtin_note": None}
    assert vision in body["intents"]
    assert "pro" in body["tiers"]
    assert body["output_formats"] == ["pcm16", "g711_ulaw", "g711_alaw"]


async def test_routing_can_be_read_back(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> None:
    org = (await client.post("/admin/v1/orgs", json={"name": "acme"}, headers=admin_headers)).json()["id"]
    empty = await client.get(f"/admin/v1/orgs/{org}/routing", headers=admin_headers)
    assert empty.json() == {"default_model": None, "chains": {}, "allowed_models": None}
    conn = {"provider": "openai", "key": "sk-test-0123456789abcdef"}
    assert (
        await client.post(f"/admin/v1/orgs/{org}/connections", json=conn, headers=admin_headers)
    ).status_code == 201
    body = {
        "chains": {"chat": ["openai/gpt-4o-mini"], "vision": []},
        "default_model": "openai/gpt-4o",
        "allowed_models": [],
    }
    put = await client.put(f"/admin/v1/orgs/{org}/routing", json=body, headers=admin_headers)
    got = await client.get(f"/admin/v1/orgs/{org}/routing", headers=admin_headers)
    assert (
        put.json()
        == got.json()
        == {
            "default_model": "openai/gpt-4o",
            "chains": {"chat": ["openai/gpt-4o-mini"]},
            "allowed_models": None,
        }
    )
    assert (await client.get("/admin/v1/orgs/nope/routing", headers=admin_headers)).status_code == 404


async def test_request_errors_name_the_field_at_fault(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    org = (await client.post("/admin/v1/orgs", json={"name": "acme"}, headers=admin_headers)).json()["id"]
    base = f"/admin/v1/orgs/{org}"

    async def error(method: str, path: str, body: object) -> dict[str, str]:
        answer = await client.request(method, base + path, json=body, headers=admin_headers)
        assert answer.status_code in (400, 409), answer.text
        error = dict(answer.json()["error"])
        assert error.pop("request_id") == answer.headers["x-request-id"]
        return error

    no_url = await error("POST", "/connections", {"provider": "openai_compatible", "name": "mylab"})
    assert no_url == {
        "type": "invalid_request",
        "message": "a custom endpoint needs a base URL",
        "param": "base_url",
    }
    assert (await error("POST", "/connections", {"provider": "nope", "key": "k"}))["param"] == "provider"
    assert (await error("POST", "/connections", {"provider": "openai"}))["param"] == "key"
    refused = await error(
        "POST",
        "/connections",
        {"provider": "openai_compatible", "name": "lab", "base_url": "http://127.0.0.1:9/v1"},
    )
    assert refused["type"] == "base_url_refused" and refused["param"] == "base_url"
    bad_ref = await error("PUT", "/routing", {"chains": {"chat": ["openai/gpt-4o"], "vision": ["gpt4"]}})
    assert bad_ref["param"] == "chains.vision" and "provider/model" in bad_ref["message"]
    assert (await error("PUT", "/routing", {"chains": {"dreaming": ["a/b"]}}))["param"] == "chains.dreaming"
    assert (await error("PUT", "/routing", {"default_model": "x"}))["param"] == "default_model"
    assert (
        await client.post(base + "/agents", json={"name": "support"}, headers=admin_headers)
    ).status_code == 201
    assert await error("POST", "/agents", {"name": "support"}) == {
        "type": "conflict",
        "message": "agent 'support' already exists",
        "param": "name",
    }
    # Errors without a single field at fault carry no param.
    missing = await client.get(base + "/connections/openai:nothing", headers=admin_headers)
    assert missing.status_code == 404 and "param" not in missing.json()["error"]
