"""`POST /v1/twilio/voice`, a phone call's webhook: TwiML that connects the call to its media
stream (`server.realtime.twilio`) and, once that stream closes, redirects back here.

Twilio authenticates with HTTP Basic (the server API key as the password,
`https://x:pb-...@host/v1/twilio/voice` in the Twilio console) or a Bearer key; with
PATCHBAY_TWILIO_AUTH_TOKEN set, the request must also carry a valid `X-Twilio-Signature`
(`twilio_signature.py`), or it is refused with 403. A bad signature or key counts against the
caller's address (server/auth_throttle.py); a locked-out address gets 429 with `retry-after`.
The TwiML hands the stream a short-lived token (never the key), the optional `model`,
`instructions` and `voice` from the webhook's query, and a handover id; its `<Redirect>` names
the same id. A draining worker hands the call to a new stream that way
(`server.realtime.handover`): the redirect, authenticated by the id and the call's SID instead
of a key, gets a new stream that resumes the conversation; a redirect with no handover behind
it ends the call (`<Hangup/>`). docs/voice.md, "Phone calls (Twilio)".
"""

from __future__ import annotations

import base64
import logging
from xml.sax.saxutils import escape, quoteattr

from fastapi import APIRouter, Request
from fastapi.responses import Response

from foundation.db import utcnow
from server.accounts import Principal
from server.auth_throttle import client_address, lockout_headers, lockout_message
from server.db_unavailable import database_unavailable
from server.realtime import handover
from server.realtime.auth import Refused, authenticate
from server.realtime.handover import new_handover_id
from server.realtime.twilio_signature import public_origin, twilio_signed
from server.services import Services

log = logging.getLogger("patchbay.twilio")
router = APIRouter()

WEBHOOK_PATH = "/v1/twilio/voice"
STREAM_PATH = "/v1/twilio/media-stream"
HANDOVER = "handover"
"""The webhook query and stream parameter naming the handover a draining worker may write."""
RESUME = "resume"
"""The stream parameter naming the handover whose conversation the stream goes on with."""
STREAM_PARAMETERS = ("instructions", "voice")
"""Webhook query fields handed to the media stream as they are (besides the token)."""


def webhook_key(authorization: str) -> str | None:
    """The API key of an `Authorization` header: Basic (the password, or a lone user) or Bearer."""
    scheme, _, value = authorization.partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer":
        return value or None
    if scheme.lower() != "basic":
        return None
    try:
        user, _, password = base64.b64decode(value, validate=True).decode("utf-8").partition(":")
    except ValueError:
        # binascii.Error, UnicodeDecodeError, and the ValueError b64decode raises for non-ASCII input.
        return None
    return password or user or None


def stream_url(request: Request, public_url: str | None) -> str:
    """`wss://` (or `ws://` for a plain-HTTP server) URL of the media stream."""
    base = public_origin(request, public_url)
    scheme, _, rest = base.partition("://")
    return ("wss" if scheme == "https" else "ws") + "://" + rest + STREAM_PATH


def webhook_url(request: Request, public_url: str | None, handover_id: str) -> str:
    """Where the call's TwiML redirects once its stream closes: this webhook, naming the handover."""
    base = public_origin(request, public_url)
    return f"{base}{WEBHOOK_PATH}?{HANDOVER}={handover_id}"


def connect_twiml(url: str, parameters: dict[str, str], redirect: str | None = None) -> str:
    """Connect the call to the media stream; once the stream closes, go on at `redirect`."""
    params = "".join(
        f"<Parameter name={quoteattr(name)} value={quoteattr(value)}/>" for name, value in parameters.items()
    )
    then = f'<Redirect method="POST">{escape(redirect)}</Redirect>' if redirect else ""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f"<Response><Connect><Stream url={quoteattr(url)}>{params}</Stream></Connect>{then}</Response>"
    )


HANGUP_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response><Hangup/></Response>'


@router.post(WEBHOOK_PATH)
async def voice_webhook(request: Request) -> Response:
    services: Services = request.app.state.services
    settings = services.settings
    address = client_address(request.scope)
    if settings.twilio_auth_token is not None and not await twilio_signed(
        request, settings.twilio_auth_token.get_secret_value(), settings.public_url
    ):
        locked = await services.auth_throttle.failed(address, surface="twilio")
        if locked is not None:
            return _locked(locked)
        return Response("missing or invalid X-Twilio-Signature", status_code=403, media_type="text/plain")
    runtime = services.voice
    handover_id = request.query_params.get(HANDOVER)
    if handover_id is not None:
        return await _resumed_call(request, services, handover_id)
    key = webhook_key(request.headers.get("authorization", ""))
    caller = await authenticate(
        services,
        runtime.signer,
        f"Bearer {key}".encode("latin-1", "replace") if key else None,
        None,
        address=address,
        surface="twilio",
    )
    if isinstance(caller, Refused):
        if caller.retry_after is not None:
            return _locked(caller.retry_after)
        return Response(
            "invalid or missing API key",
            status_code=401,
            media_type="text/plain",
            headers={"www-authenticate": 'Basic realm="patchbay"'},
        )
    query = request.query_params
    parameters = {name: query[name] for name in STREAM_PARAMETERS if query.get(name)}
    return _connect(request, services, caller.principal, query.get("model") or None, parameters)


def _connect(
    request: Request,
    services: Services,
    principal: Principal,
    model: str | None,
    parameters: dict[str, str],
    *,
    resume: str | None = None,
) -> Response:
    """TwiML that connects the call to a media stream with a fresh token, and redirects back
    here, naming a new handover, once that stream closes."""
    token, _ = services.voice.signer.mint(principal, model=model)
    handover_id = new_handover_id()
    given = {"token": token, **parameters, HANDOVER: handover_id} | ({RESUME: resume} if resume else {})
    public_url = services.settings.public_url
    twiml = connect_twiml(
        stream_url(request, public_url), given, redirect=webhook_url(request, public_url, handover_id)
    )
    return Response(twiml, media_type="application/xml")


async def _resumed_call(request: Request, services: Services, handover_id: str) -> Response:
    """Twilio's redirect once a stream closed: the call goes on in a new stream if a draining
    worker handed it over, else it ends (the stream ended for any other reason)."""
    call_sid = (await request.form()).get("CallSid")
    try:
        found = (
            await handover.find(services.db, handover_id, call_sid, utcnow())
            if isinstance(call_sid, str)
            else None
        )
    except Exception as exc:
        if not database_unavailable(exc):
            raise
        # An error status would have Twilio play its application-error message to the caller.
        log.warning(
            "twilio call ends: the database is unavailable to find its handover",
            extra={"fields": {"call": call_sid, "error_type": type(exc).__name__}},
        )
        return Response(HANGUP_TWIML, media_type="application/xml")
    if found is None:
        log.info(
            "twilio call ends: its stream closed without a handover", extra={"fields": {"call": call_sid}}
        )
        return Response(HANGUP_TWIML, media_type="application/xml")
    log.info(
        "twilio call handed over to a new stream",
        extra={"fields": {"call": call_sid, "org": found.principal.org_id}},
    )
    return _connect(request, services, found.principal, found.model, found.parameters, resume=found.id)


def _locked(retry_after: float) -> Response:
    return Response(
        lockout_message(retry_after),
        status_code=429,
        media_type="text/plain",
        headers=lockout_headers(retry_after),
    )
