"""The Twilio webhook with PATCHBAY_TWILIO_AUTH_TOKEN set: only requests Twilio signed are answered.

Requests are signed as Twilio signs them, by the official SDK's `RequestValidator`, over the
URL Twilio requested (the public URL, not the address the test connects to) and the form.
Without the token the webhook behaves as before (tests/server/realtime/test_twilio.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from twilio.request_validator import RequestValidator

from server.settings import Settings
from tests.server.realtime.conftest import Patchbay
from tests.server.realtime.twilio_phone import basic, redirect_of, stream_of

AUTH_TOKEN = "twilio-auth-token-for-tests"
PUBLIC = "https://voice.example.com"
FORM = {"CallSid": "CA0123", "From": "+15550100", "To": "+15550199"}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"twilio_auth_token": SecretStr(AUTH_TOKEN), "public_url": PUBLIC})


def sign(url: str, form: dict[str, str], token: str = AUTH_TOKEN) -> str:
    return str(RequestValidator(token).compute_signature(url, form))


@pytest.fixture
async def post(patchbay: Patchbay) -> AsyncIterator[Callable[..., Any]]:
    async with httpx.AsyncClient(base_url=patchbay.url) as http:

        async def send(query: str, signature: str | None, form: dict[str, str] = FORM) -> httpx.Response:
            headers = {"authorization": basic("twilio", patchbay.key)}
            if signature is not None:
                headers["x-twilio-signature"] = signature
            return await http.post(f"/v1/twilio/voice{query}", data=form, headers=headers)

        yield send


async def test_a_request_twilio_signed_gets_twiml(post: Callable[..., Any]) -> None:
    query = "?model=default&voice=en-gb"
    answered = await post(query, sign(f"{PUBLIC}/v1/twilio/voice{query}", FORM))
    assert answered.status_code == 200, answered.text
    url, parameters = stream_of(answered.text)
    assert url == "wss://voice.example.com/v1/twilio/media-stream" and parameters["voice"] == "en-gb"


async def test_unsigned_or_wrongly_signed_requests_are_refused(
    post: Callable[..., Any], patchbay: Patchbay
) -> None:
    url = f"{PUBLIC}/v1/twilio/voice"
    refused = {
        "missing": await post("", None),
        "other token": await post("", sign(url, FORM, token="someone-else")),
        "another form": await post("", sign(url, FORM | {"From": "+15550666"})),
        "another query": await post("?voice=en-gb", sign(url, FORM)),
        "the connecting address, not the public URL": await post(
            "", sign(f"{patchbay.url}/v1/twilio/voice", FORM)
        ),
    }
    for why, response in refused.items():
        assert response.status_code == 403, why
        assert "Stream" not in response.text and "X-Twilio-Signature" in response.text, why


async def test_the_redirect_twilio_signs_is_answered_and_an_unsigned_one_refused(
    post: Callable[..., Any], patchbay: Patchbay
) -> None:
    """Twilio signs its redirect over the URL the TwiML named, the public one: that is the URL
    the check rebuilds, so a handover is not refused behind a proxy."""
    answered = await post("", sign(f"{PUBLIC}/v1/twilio/voice", FORM))
    redirect = redirect_of(answered.text)
    assert redirect.startswith(f"{PUBLIC}/v1/twilio/voice?handover=")
    path = redirect.removeprefix(PUBLIC)
    async with httpx.AsyncClient(base_url=patchbay.url) as http:
        signed = await http.post(path, data=FORM, headers={"x-twilio-signature": sign(redirect, FORM)})
        unsigned = await http.post(path, data=FORM)
    assert signed.status_code == 200 and signed.text.endswith("<Hangup/></Response>")  # nothing handed over
    assert unsigned.status_code == 403
