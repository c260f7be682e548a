"""The admin API's door: authenticate, check CSRF, authorize, all before a body is read.

`AdminGate` runs for every `/admin/` path before the app sees the request, so a caller without
a valid credential never gets its body read or parsed. Credentials, in order:
- `Authorization: Bearer <operator token>`: the server's operator (every org, every action);
- `Authorization: Bearer pbt-…`: an org admin token (one org, one role);
- the `patchbay_session` cookie of a signed-in user (their orgs and roles). A state-changing
  request on a cookie must carry the session's CSRF token in `X-CSRF-Token` and must not come
  from another site (`Origin`, `Sec-Fetch-Site`).
Then `server.access.policy.authorize` applies the one route table. The caller is left in the
request's state (`admin_caller`) and every audit row written by the request carries it.
With the admin API turned off (PATCHBAY_ADMIN_API=false) everything here answers 503.
"""

from __future__ import annotations

import hmac
from http.cookies import SimpleCookie

import orjson
from fastapi import HTTPException, Request
from starlette.types import ASGIApp, Receive, Scope, Send

from foundation.audit import acting
from server.access import policy, tokens, users
from server.access.caller import Caller, operator
from server.auth_throttle import client_address, lockout_headers, lockout_message
from server.errors import with_request_id
from server.services import Services

ADMIN_PREFIX = "/admin/"
SESSION_COOKIE = "patchbay_session"
CSRF_HEADER = "x-csrf-token"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class Refused(Exception):
    def __init__(self, status: int, type_: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.type, self.message, self.headers = status, type_, message, headers or {}


def _header(scope: Scope, name: bytes) -> str | None:
    return next((v.decode("latin-1") for k, v in scope["headers"] if k == name), None)


def session_cookie(cookie_header: str | None) -> str | None:
    if not cookie_header:
        return None
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(cookie_header)
    except Exception:  # a malformed Cookie header is no credential, not an error page
        return None
    morsel = jar.get(SESSION_COOKIE)
    return morsel.value if morsel is not None and morsel.value else None


def _unauthorized(
    message: str = "missing or wrong admin credential (a bearer token or a signed-in session)",
) -> Refused:
    return Refused(401, "unauthorized", message, {"www-authenticate": "Bearer"})


def locked_out(retry_after: float) -> Refused:
    return Refused(429, "rate_limited", lockout_message(retry_after), lockout_headers(retry_after))


async def authenticate(services: Services, scope: Scope) -> Caller:
    """Who the request speaks for; raises `Refused` (401, or 429 for an address locked out by
    failed attempts) when nobody.

    A bearer token is checked only when its address is not locked out, and a wrong one counts
    against the address. A dead session cookie does not: it holds 256 random bits, nothing to
    guess, and an expired sign-in must not lock its owner out.
    """
    address = client_address(scope)
    scheme, _, presented = (_header(scope, b"authorization") or "").partition(" ")
    presented = presented.strip()
    if scheme.lower() == "bearer" and presented:
        throttle = services.auth_throttle
        if (wait := await throttle.locked(address)) is not None:
            raise locked_out(wait)
        expected = services.admin_token.get_secret_value().encode() if services.admin_token else b""
        if expected and hmac.compare_digest(presented.encode(), expected):
            return operator(address)
        async with services.db.session() as session:
            caller = await tokens.authenticate_token(session, presented, address)
        if caller is None:
            if (wait := await throttle.failed(address, surface="admin")) is not None:
                raise locked_out(wait)
            raise _unauthorized()
        return caller
    cookie = session_cookie(_header(scope, b"cookie"))
    if cookie is not None:
        async with services.db.session() as session:
            caller = await users.authenticate_session(session, cookie, address)
        if caller is None:
            raise _unauthorized("your session has ended; sign in again")
        return caller
    raise _unauthorized()


def check_same_origin(scope: Scope) -> None:
    """Refuse a request a browser says came from another site (`Sec-Fetch-Site`, `Origin`)."""
    if (_header(scope, b"sec-fetch-site") or "same-origin") not in ("same-origin", "none"):
        raise Refused(403, "csrf_failed", "cross-site request refused")
    origin = _header(scope, b"origin")
    host = _header(scope, b"host")
    if origin is not None and host is not None and origin.split("://", 1)[-1] != host:
        raise Refused(403, "csrf_failed", "cross-site request refused (Origin does not match)")


def check_csrf(caller: Caller, scope: Scope) -> None:
    """Cookie-authenticated state changes must prove they come from our own page."""
    if caller.csrf_token is None or scope["method"] in _SAFE_METHODS:
        return
    check_same_origin(scope)
    presented = _header(scope, CSRF_HEADER.encode()) or ""
    if not presented or not hmac.compare_digest(presented.encode(), caller.csrf_token.encode()):
        raise Refused(403, "csrf_failed", f"missing or wrong {CSRF_HEADER} header; reload the page")


def admin_caller(request: Request) -> Caller:
    """The caller the gate let in (a router dependency; refuses if the gate did not run)."""
    caller = request.scope.get("state", {}).get("admin_caller")
    if not isinstance(caller, Caller):
        raise HTTPException(
            401, detail={"type": "unauthorized", "message": "missing or wrong admin credential"}
        )
    return caller


require_admin = admin_caller


class AdminGate:
    """Pure ASGI middleware: answer 401/403/404/503 for `/admin/` requests that may not pass, unread."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(ADMIN_PREFIX):
            await self.app(scope, receive, send)
            return
        services: Services = scope["app"].state.services
        try:
            if services.admin_token is None:
                raise Refused(
                    503,
                    "admin_disabled",
                    "the admin API is turned off on this server (PATCHBAY_ADMIN_API=false)",
                )
            caller = await authenticate(services, scope)
            check_csrf(caller, scope)
            refusal = policy.authorize(caller, scope["method"], scope["path"])
            if refusal is not None:
                raise Refused(refusal.status, refusal.type, refusal.message)
        except Refused as refused:
            await _answer(send, refused)
            return
        scope.setdefault("state", {})["admin_caller"] = caller
        with acting(caller.acting()):
            await self.app(scope, receive, send)


async def _answer(send: Send, refused: Refused) -> None:
    body = orjson.dumps({"error": with_request_id({"type": refused.type, "message": refused.message})})
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.encode(), v.encode()) for k, v in refused.headers.items()]
    await send({"type": "http.response.start", "status": refused.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
