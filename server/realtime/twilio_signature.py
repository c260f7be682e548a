"""Twilio's webhook signature (`X-Twilio-Signature`): proof that a request came from Twilio.

With PATCHBAY_TWILIO_AUTH_TOKEN set, the webhook answers only requests whose signature the
official SDK's `RequestValidator` accepts; without it, only the API key protects the webhook.
Twilio signs the URL it requested (scheme, host, path and query, as configured in its console)
followed by the POST form parameters, so the URL is rebuilt from PATCHBAY_PUBLIC_URL: behind a
proxy the request's own URL is not what Twilio asked for. When PUBLIC_URL is unset, the
request's scheme and Host stand in for it, as they do for the media stream URL.
"""

from __future__ import annotations

from fastapi import Request
from twilio.request_validator import RequestValidator, get_signature_algorithm

SIGNATURE_HEADER = "x-twilio-signature"
SETTINGS_HEADER = "x-twilio-webhooks-signature-settings"


def public_origin(request: Request, public_url: str | None) -> str:
    """The scheme and host Twilio reaches this server at: PATCHBAY_PUBLIC_URL, else the request's."""
    return public_url.rstrip("/") if public_url else f"{request.url.scheme}://{request.url.netloc}"


def signed_url(request: Request, public_url: str | None) -> str:
    """The URL Twilio requested and signed: the public base, then this request's path and query."""
    query = request.url.query
    return public_origin(request, public_url) + request.url.path + (f"?{query}" if query else "")


async def twilio_signed(request: Request, auth_token: str, public_url: str | None) -> bool:
    """Whether `request` carries a valid Twilio signature over its URL and form parameters."""
    signature = request.headers.get(SIGNATURE_HEADER)
    if not signature:
        return False
    form = await request.form()
    algorithm = get_signature_algorithm(request.headers.get(SETTINGS_HEADER, ""))
    return bool(
        RequestValidator(auth_token).validate(signed_url(request, public_url), form, signature, algorithm)
    )
