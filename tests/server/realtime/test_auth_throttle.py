"""Failed authentication on the realtime and Twilio doors, over a real server: bad keys and
tokens on `/v1/realtime`, bad signatures and keys on the Twilio webhook and bad tokens on its
media stream all count against the address; a locked-out address gets HTTP 429 with
`retry-after` from the WebSocket handshake and the webhook, and close code 1013 on the media
stream (which authenticates after it accepts).

The server trusts its loopback peer's `X-Forwarded-For` (uvicorn's default, what
PATCHBAY_FORWARDED_ALLOW_IPS sets in production), so a test can speak from several addresses.
The throttle is swapped for one on a clock and a sleep the test holds, with a limit of 3.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
import websockets
from pydantic import SecretStr
from websockets.exceptions import ConnectionClosed

from server.auth_throttle import AuthThrottle
from server.auth_throttle_policy import ThrottlePolicy
from server.auth_throttle_store import InProcessFailureStore
from server.settings import Settings
from tests.server.realtime.conftest import Client, Patchbay
from tests.server.realtime.test_twilio import Phone, basic
from tests.server.realtime.test_twilio_signature import AUTH_TOKEN, FORM, PUBLIC, sign
from tests.server.throttle_fakes import Clock

POLICY = ThrottlePolicy(limit=3, window=60.0, lockout=300.0)
ATTACKER = "203.0.113.66"
ELSEWHERE = "198.51.100.7"
BAD = "pb-" + "0" * 43
WEBHOOK = f"{PUBLIC}/v1/twilio/voice"


async def no_wait(seconds: float) -> None:
    return None


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"twilio_auth_token": SecretStr(AUTH_TOKEN), "public_url": PUBLIC})


@pytest.fixture
def clock(patchbay: Patchbay) -> Clock:
    clock = Clock()
    patchbay.services.auth_throttle = AuthThrottle(
        POLICY, InProcessFailureStore(POLICY, clock=clock), sleep=no_wait
    )
    return clock


async def handshake(patchbay: Patchbay, address: str, *, key: str | None = None, query: str = "") -> Client:
    headers = {"x-forwarded-for": address}
    if key is not None:
        headers["authorization"] = f"Bearer {key}"
    ws = await websockets.connect(f"{patchbay.ws_url}?model=default{query}", additional_headers=headers)
    return Client(ws)


async def refused_status(patchbay: Patchbay, address: str, **kwargs: Any) -> websockets.InvalidStatus:
    with pytest.raises(websockets.InvalidStatus) as refused:
        client = await handshake(patchbay, address, **kwargs)
        await client.ws.close()
    return refused.value


async def test_bad_keys_and_tokens_on_the_socket_lock_the_address(patchbay: Patchbay, clock: Clock) -> None:
    for _ in range(2):
        assert (await refused_status(patchbay, ATTACKER, key=BAD)).response.status_code == 403
    locked = (await refused_status(patchbay, ATTACKER, key=BAD)).response
    assert locked.status_code == 429 and locked.headers["retry-after"] == "300"
    body = orjson.loads(locked.body or b"{}")
    assert body["error"]["code"] == "auth_failures_exceeded" and body["error"]["type"] == "rate_limit_error"
    forged = (await refused_status(patchbay, ATTACKER, query="&token=ek_forged.signature")).response
    assert forged.status_code == 429
    # Nothing presented is refused as before, and not counted.
    assert (await refused_status(patchbay, ELSEWHERE)).response.status_code == 403

    # The key's holder elsewhere connects; so does the key from the locked address (checked
    # before the throttle is asked). Another address's bad key is its own first failure.
    for address in (ELSEWHERE, ATTACKER):
        client = await handshake(patchbay, address, key=patchbay.key)
        assert (await client.recv())["type"] == "session.created"
        await client.ws.close()
    assert (await refused_status(patchbay, ELSEWHERE, key=BAD)).response.status_code == 403

    clock.now += 300
    assert (await refused_status(patchbay, ATTACKER, key=BAD)).response.status_code == 403


async def test_an_expired_browser_token_counts(patchbay: Patchbay, clock: Clock) -> None:
    principal = await patchbay.services.gateway.api_keys.authenticate(patchbay.key)
    assert principal is not None
    patchbay.runtime.signer.ttl = -10  # minted already expired
    expired, _ = patchbay.runtime.signer.mint(principal)
    for _ in range(2):  # refused saying why (the socket is accepted for the error event), and counted
        client = await handshake(patchbay, ATTACKER, query=f"&token={expired}")
        refusal = await client.recv()
        assert refusal["error"]["code"] == "token_expired"
        await client.ws.close()
    locked = await refused_status(patchbay, ATTACKER, query=f"&token={expired}")
    assert locked.response.status_code == 429


@pytest.fixture
async def http(patchbay: Patchbay) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=patchbay.url) as client:
        yield client


async def post_webhook(
    http: httpx.AsyncClient, address: str, key: str, signature: str | None
) -> httpx.Response:
    headers = {"authorization": basic("twilio", key), "x-forwarded-for": address}
    if signature is not None:
        headers["x-twilio-signature"] = signature
    return await http.post("/v1/twilio/voice", data=FORM, headers=headers)


async def test_bad_twilio_signatures_and_keys_lock_the_address(
    patchbay: Patchbay, clock: Clock, http: httpx.AsyncClient
) -> None:
    good = sign(WEBHOOK, FORM)
    wrong = sign(WEBHOOK, FORM, token="someone-else")
    assert (await post_webhook(http, ATTACKER, patchbay.key, None)).status_code == 403
    assert (await post_webhook(http, ATTACKER, patchbay.key, wrong)).status_code == 403
    locked = await post_webhook(http, ATTACKER, BAD, good)  # signed, but a bad key: the third failure
    assert locked.status_code == 429 and locked.headers["retry-after"] == "300"
    assert "too many failed authentication attempts" in locked.text
    assert (await post_webhook(http, ATTACKER, patchbay.key, wrong)).status_code == 429
    # Twilio's own signed request with the right key is answered, from anywhere.
    assert (await post_webhook(http, ATTACKER, patchbay.key, good)).status_code == 200
    assert (await post_webhook(http, ELSEWHERE, patchbay.key, wrong)).status_code == 403
    clock.now += 300
    assert (await post_webhook(http, ATTACKER, patchbay.key, wrong)).status_code == 403


async def media_stream_close_code(patchbay: Patchbay, address: str, token: str) -> int:
    url = patchbay.ws_url.replace("/v1/realtime", "/v1/twilio/media-stream")
    async with websockets.connect(url, additional_headers={"x-forwarded-for": address}) as ws:
        phone = Phone(ws)
        await phone.start({"token": token})
        with pytest.raises(ConnectionClosed) as closed:
            await phone.recv()
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code


async def test_bad_media_stream_tokens_lock_the_address(patchbay: Patchbay, clock: Clock) -> None:
    codes = [await media_stream_close_code(patchbay, ATTACKER, "ek_forged.signature") for _ in range(4)]
    assert codes == [1008, 1008, 1013, 1013]
    assert await media_stream_close_code(patchbay, ELSEWHERE, "ek_forged.signature") == 1008
    assert patchbay.runtime.sessions.total == 0
