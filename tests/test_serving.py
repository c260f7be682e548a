"""The test servers' own harness: a server binds its port before it starts, one that cannot
start fails its test with an ordinary error, and handed-out ports are this worker's own."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from tests.emulators.harness import ServedApp, free_port
from tests.serving import loopback_config, uvicorn_in_loop


async def hello(request: Any) -> PlainTextResponse:
    return PlainTextResponse("hello")


def failing_lifespan(app: Any) -> Any:
    class Failing:
        async def __aenter__(self) -> None:
            raise RuntimeError("the app's start-up failed")

        async def __aexit__(self, *exc: object) -> None:
            return None

    return Failing()


async def test_two_servers_on_port_0_each_get_their_own_port_and_serve_on_it() -> None:
    app = Starlette(routes=[Route("/", hello)])
    first, second = loopback_config(app), loopback_config(app)
    async with uvicorn_in_loop(first), uvicorn_in_loop(second):
        assert first.port != 0 and second.port != 0 and first.port != second.port
        async with httpx.AsyncClient() as http:
            for config in (first, second):
                assert (await http.get(f"http://127.0.0.1:{config.port}/")).text == "hello"


async def test_a_server_that_cannot_start_fails_with_an_ordinary_error_and_the_loop_goes_on() -> None:
    # uvicorn calls sys.exit when the app's lifespan fails; a SystemExit out of the test's loop
    # would leave pytest's fixture cache broken for every later test on this worker.
    config = loopback_config(Starlette(lifespan=failing_lifespan))
    with pytest.raises(RuntimeError, match="uvicorn could not start"):
        async with uvicorn_in_loop(config):
            pytest.fail("the server started")
    assert await asyncio.sleep(0, result="still running") == "still running"


async def test_a_taken_port_fails_with_an_ordinary_error() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        config = loopback_config(Starlette(), taken.getsockname()[1])
        with pytest.raises(OSError):
            async with uvicorn_in_loop(config):
                pytest.fail("the server started")


def test_an_emulator_serves_on_the_port_it_names_from_the_start() -> None:
    served = ServedApp(Starlette(routes=[Route("/", hello)]))
    # The port is held before the server starts: nobody else can bind it meanwhile.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as other, pytest.raises(OSError):
        other.bind(("127.0.0.1", served.port))
    with served:
        assert httpx.get(served.url + "/").text == "hello"


def test_an_emulator_never_started_lets_its_port_go() -> None:
    served = ServedApp(Starlette())
    served.stop()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as again:
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind(("127.0.0.1", served.port))


def test_free_ports_are_distinct_unused_and_outside_the_kernels_ephemeral_range() -> None:
    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == 50
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    if low >= 32_000:  # room for the workers' slices below it (tests/emulators/harness.py)
        assert all(port < low for port in ports)
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0, f"something listens on {port}"


def test_a_listening_port_in_the_slice_is_passed_over() -> None:
    first = free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", first + 1))
        holder.listen()
        # Next in the worker's slice is first + 1, held here: it is passed over.
        assert free_port() not in (first, first + 1)
