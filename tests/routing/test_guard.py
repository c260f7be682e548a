from __future__ import annotations

import socket

import httpx
import pytest
from aiohttp.abc import AbstractResolver, ResolveResult
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from routing.errors import BaseUrlRefusedError
from routing.guard import (
    GuardPolicy,
    address_kind,
    check_base_url,
    check_host,
    guard_request_hook,
    guarded_aiohttp_transport,
    guarded_transport,
    validate_base_url,
)
from tests.emulators.harness import ServedApp

DEFAULT = GuardPolicy()
ALLOW_PRIVATE = GuardPolicy(allow_private=True)


def fake_dns(table: dict[str, list[str]]):  # type: ignore[no-untyped-def]
    async def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise OSError("no such host")
        return table[host]

    return resolve


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("169.254.169.254", "link_local"),
        ("127.0.0.1", "loopback"),
        ("10.0.0.1", "private"),
        ("192.168.1.20", "private"),
        ("172.16.5.4", "private"),
        ("100.64.0.1", "reserved"),
        ("0.0.0.0", "unspecified"),
        ("::1", "loopback"),
        ("fe80::1", "link_local"),
        ("fd00:ec2::254", "private"),
        ("::ffff:169.254.169.254", "link_local"),
        ("224.0.0.1", "multicast"),
        ("8.8.8.8", None),
        ("2606:4700::1111", None),
    ],
)
def test_address_kinds(address: str, kind: str | None) -> None:
    import ipaddress

    assert address_kind(ipaddress.ip_address(address)) == kind


@pytest.mark.parametrize("host", ["169.254.169.254", "127.0.0.1", "10.0.0.1"])
async def test_private_literals_refused_by_default_and_allowed_by_switch(host: str) -> None:
    url = f"https://{host}/v1"
    with pytest.raises(BaseUrlRefusedError) as info:
        validate_base_url(url, DEFAULT)
    assert info.value.reason == "private_address"
    assert "PATCHBAY_ALLOW_PRIVATE_BASE_URLS" in str(info.value)
    with pytest.raises(BaseUrlRefusedError):
        await check_base_url(url, DEFAULT)
    assert [str(a) for a in await check_base_url(url, ALLOW_PRIVATE)] == [host]
    # Private networks may speak plain http once allowed (a vLLM box on the LAN).
    await check_base_url(f"http://{host}:8000/v1", ALLOW_PRIVATE)


async def test_every_resolved_address_is_checked() -> None:
    dns = fake_dns({"llm.example.com": ["93.184.216.34", "10.1.2.3"], "ok.example.com": ["93.184.216.34"]})
    with pytest.raises(BaseUrlRefusedError) as info:
        await check_base_url("https://llm.example.com/v1", DEFAULT, resolve=dns)
    assert "10.1.2.3" in str(info.value)
    assert [str(a) for a in await check_base_url("https://ok.example.com/v1", DEFAULT, resolve=dns)] == [
        "93.184.216.34"
    ]


async def test_check_runs_on_every_call_so_dns_changes_are_seen() -> None:
    table = {"llm.example.com": ["93.184.216.34"]}
    dns = fake_dns(table)
    await check_base_url("https://llm.example.com/v1", DEFAULT, resolve=dns)
    table["llm.example.com"] = ["169.254.169.254"]
    with pytest.raises(BaseUrlRefusedError):
        await check_base_url("https://llm.example.com/v1", DEFAULT, resolve=dns)


async def test_plain_http_to_public_host_refused_unless_allowed() -> None:
    dns = fake_dns({"llm.example.com": ["93.184.216.34"]})
    with pytest.raises(BaseUrlRefusedError) as info:
        await check_base_url("http://llm.example.com/v1", DEFAULT, resolve=dns)
    assert info.value.reason == "plain_http"
    await check_base_url("http://llm.example.com/v1", GuardPolicy(allow_plain_http=True), resolve=dns)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://example.com", "invalid_url"),
        ("https://user:sk-secret@example.com/v1", "invalid_url"),
        ("https:///v1", "invalid_url"),
        ("https://example.com/v1?x=1", "invalid_url"),
        ("https://localhost:8000/v1", "private_address"),
        ("https://LOCALHOST./v1", "private_address"),
        ("https://[::1]/v1", "private_address"),
        ("https://224.0.0.1/v1", "private_address"),
    ],
)
def test_save_time_validation(url: str, reason: str) -> None:
    with pytest.raises(BaseUrlRefusedError) as info:
        validate_base_url(url, DEFAULT)
    assert info.value.reason == reason
    assert "sk-secret" not in str(info.value)


def test_multicast_refused_even_when_private_allowed() -> None:
    with pytest.raises(BaseUrlRefusedError):
        validate_base_url("https://224.0.0.1/v1", ALLOW_PRIVATE)


async def test_unresolvable_host() -> None:
    with pytest.raises(BaseUrlRefusedError) as info:
        await check_base_url("https://nowhere.invalid/v1", DEFAULT, resolve=fake_dns({}))
    assert info.value.reason == "unresolvable"


async def test_real_resolver() -> None:
    with pytest.raises(BaseUrlRefusedError) as info:
        await check_host("localhost", 443, DEFAULT)
    assert info.value.reason == "private_address"
    assert all(address_kind(a) == "loopback" for a in await check_host("localhost", 443, ALLOW_PRIVATE))


def _app() -> Starlette:
    async def hello(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    return Starlette(routes=[Route("/v1/ping", hello)])


@pytest.fixture(scope="module")
def served() -> ServedApp:  # type: ignore[misc]
    with ServedApp(_app()) as s:
        yield s


async def test_guarded_transport_refuses_loopback_on_connect(served: ServedApp) -> None:
    async with httpx.AsyncClient(transport=guarded_transport(DEFAULT)) as client:
        with pytest.raises(BaseUrlRefusedError):
            await client.get(f"{served.url}/v1/ping")
    async with httpx.AsyncClient(transport=guarded_transport(ALLOW_PRIVATE)) as client:
        assert (await client.get(f"{served.url}/v1/ping")).text == "ok"


async def test_guarded_transport_connects_to_the_checked_address(served: ServedApp) -> None:
    # The system resolver does not know this name: success proves the checked address was used.
    dns = fake_dns({"emulator.test": ["127.0.0.1"]})
    async with httpx.AsyncClient(transport=guarded_transport(ALLOW_PRIVATE, resolve=dns)) as client:
        response = await client.get(f"http://emulator.test:{served.port}/v1/ping")
    assert response.text == "ok"


async def test_request_hook(served: ServedApp) -> None:
    async with httpx.AsyncClient(event_hooks={"request": [guard_request_hook(DEFAULT)]}) as client:
        with pytest.raises(BaseUrlRefusedError):
            await client.get(f"{served.url}/v1/ping")


class FakeAiohttpResolver(AbstractResolver):
    def __init__(self, table: dict[str, str]) -> None:
        self.table = table

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        ip = self.table[host]
        return [
            {"hostname": host, "host": ip, "port": port, "family": socket.AF_INET, "proto": 0, "flags": 0}
        ]

    async def close(self) -> None:
        return None


async def test_guarded_aiohttp_transport_checks_literals_and_names(served: ServedApp) -> None:
    async with httpx.AsyncClient(transport=guarded_aiohttp_transport(DEFAULT)) as client:
        with pytest.raises(BaseUrlRefusedError):
            await client.get(f"{served.url}/v1/ping")
    resolver = FakeAiohttpResolver({"emulator.test": "127.0.0.1"})
    async with httpx.AsyncClient(transport=guarded_aiohttp_transport(DEFAULT, resolver=resolver)) as client:
        with pytest.raises(BaseUrlRefusedError):
            await client.get(f"http://emulator.test:{served.port}/v1/ping")
    resolver = FakeAiohttpResolver({"emulator.test": "127.0.0.1"})
    async with httpx.AsyncClient(
        transport=guarded_aiohttp_transport(ALLOW_PRIVATE, resolver=resolver)
    ) as client:
        assert (await client.get(f"http://emulator.test:{served.port}/v1/ping")).text == "ok"
        assert (await client.get(f"{served.url}/v1/ping")).text == "ok"


@pytest.mark.parametrize(
    "host", ["2130706433", "0177.0.0.1", "127.1", "0x7f.1", "0x7f000001", "017700000001"]
)
async def test_legacy_numeric_forms_are_refused_at_save_and_connect_time(host: str) -> None:
    """Resolvers read these as 127.0.0.1; a save-time check taking them for names let them through."""
    for policy in (DEFAULT, ALLOW_PRIVATE):
        with pytest.raises(BaseUrlRefusedError) as saved:
            validate_base_url(f"https://{host}/v1", policy)
        assert saved.value.reason == "invalid_url"
        assert "numeric IPv4 form (read as 127.0.0.1)" in str(saved.value) and "a.b.c.d" in str(saved.value)
    with pytest.raises(BaseUrlRefusedError):
        await check_base_url(f"https://{host}/v1", DEFAULT)


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("64:ff9b::7f00:1", "loopback"),
        ("64:ff9b::a9fe:a9fe", "link_local"),
        ("64:ff9b::a00:1", "private"),
        ("64:ff9b::808:808", None),
        ("64:ff9b:1::808:808", "private"),
        ("2002:7f00:1::", "loopback"),
        ("2002:a9fe:a9fe::1", "link_local"),
        ("2002:c0a8:114::", "private"),
        ("2002:808:808::", None),
        ("::127.0.0.1", "loopback"),
        ("::169.254.169.254", "link_local"),
        ("::10.0.0.1", "private"),
        ("::224.0.0.1", "multicast"),
    ],
)
def test_ipv6_addresses_embedding_ipv4_are_judged_by_it(address: str, kind: str | None) -> None:
    import ipaddress

    assert address_kind(ipaddress.ip_address(address)) == kind
    if kind is not None:
        with pytest.raises(BaseUrlRefusedError) as info:
            validate_base_url(f"https://[{address}]/v1", DEFAULT)
        assert info.value.reason == "private_address"


def test_names_that_merely_contain_digits_are_not_numeric_forms() -> None:
    for url in ("https://llm.example.com/v1", "https://1.example.com/v1", "https://api.0x7f.dev/v1"):
        validate_base_url(url, DEFAULT)
