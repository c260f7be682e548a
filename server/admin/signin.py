"""Signing people in and out of the web UI: `/auth/login`, `/auth/logout`, `/auth/logout-all`,
and accepting an invite (`/auth/invite`).

A successful sign-in sets the `patchbay_session` cookie (HttpOnly, SameSite=Strict, Secure unless
PATCHBAY_SESSION_COOKIE_SECURE=false, Max-Age = PATCHBAY_SESSION_HOURS) and returns the CSRF
token the page echoes in `X-CSRF-Token`. Wrong passwords count against the address like any
failed credential. Sign-out needs the CSRF token too, so another site cannot sign people out.
"""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from foundation.audit import AuditEvent, acting
from server.access import users
from server.access.caller import Caller
from server.access.tables import User
from server.admin.auth import (
    SESSION_COOKIE,
    Refused,
    check_csrf,
    check_same_origin,
    locked_out,
    session_cookie,
)
from server.auth_throttle import client_address
from server.services import Services

router = APIRouter(prefix="/auth", tags=["auth"])


class SignIn(BaseModel):
    email: str = Field(min_length=1, max_length=254)
    password: str = Field(min_length=1, max_length=users.MAX_PASSWORD)


class Accept(BaseModel):
    token: str = Field(min_length=1, max_length=128)
    password: str = Field(min_length=1, max_length=users.MAX_PASSWORD)


class InvitePreview(BaseModel):
    token: str = Field(min_length=1, max_length=128)


class SignedIn(BaseModel):
    email: str
    csrf_token: str


def _services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc


async def _signed_in(request: Request, user: User) -> JSONResponse:
    svc = _services(request)
    ttl = timedelta(hours=svc.settings.session_hours)
    async with svc.db.session() as s:
        opened = await users.open_session(s, user, ttl=ttl, address=client_address(request.scope))
        s.add(
            AuditEvent(
                org_id=None,
                actor=user.email[:64],
                action="user.sign_in",
                target_type="user",
                target_id=user.id,
            )
        )
    response = JSONResponse(SignedIn(email=user.email, csrf_token=opened.csrf_token).model_dump())
    response.set_cookie(
        SESSION_COOKIE,
        opened.cookie,
        max_age=int(ttl.total_seconds()),
        path="/",
        httponly=True,
        secure=svc.settings.session_cookie_secure,
        samesite="strict",
    )
    return response


async def _guarded(request: Request, attempt: users.SignInError | None) -> None:
    """Refuse an address locked out by failed attempts; count a failed one (`attempt`) against it.
    Before the attempt, also refuse one another site's page made (login CSRF: signing a browser
    in to an account of the attacker's choosing)."""
    if attempt is None:
        check_same_origin(request.scope)
    throttle = _services(request).auth_throttle
    address = client_address(request.scope)
    wait = await (
        throttle.locked(address) if attempt is None else throttle.failed(address, surface="password")
    )
    if wait is not None:
        raise locked_out(wait)
    if attempt is not None:
        raise attempt


@router.post("/login", response_model=SignedIn)
async def login(body: SignIn, request: Request) -> Response:
    await _guarded(request, None)
    svc = _services(request)
    try:
        async with svc.db.session() as s:
            user = await users.sign_in(s, body.email, body.password)
    except users.SignInError as exc:
        await _guarded(request, exc)
        raise
    return await _signed_in(request, user)


@router.post("/invite")
async def invite_preview(body: InvitePreview, request: Request) -> dict[str, str]:
    """What an invite link is for (org, role, email, whether the account exists), without using it."""
    await _guarded(request, None)
    try:
        async with _services(request).db.session() as s:
            return await users.preview_invite(s, body.token)
    except users.SignInError as exc:
        await _guarded(request, exc)
        raise


@router.post("/invite/accept", response_model=SignedIn)
async def accept(body: Accept, request: Request) -> Response:
    await _guarded(request, None)
    try:
        async with _services(request).db.session() as s:
            user = await users.accept_invite(s, body.token, body.password)
    except users.SignInError as exc:
        await _guarded(request, exc)
        raise
    return await _signed_in(request, user)


async def _session_caller(request: Request) -> Caller:
    cookie = session_cookie(request.headers.get("cookie"))
    caller = None
    if cookie is not None:
        async with _services(request).db.session() as s:
            caller = await users.authenticate_session(s, cookie, client_address(request.scope))
    if caller is None:
        raise Refused(401, "unauthorized", "you are not signed in")
    check_csrf(caller, request.scope)
    return caller


def _signed_out() -> Response:
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response


@router.post("/logout", status_code=204)
async def logout(request: Request) -> Response:
    caller = await _session_caller(request)
    assert caller.session_id is not None
    async with _services(request).db.session() as s:
        await users.close_session(s, caller.session_id)
    return _signed_out()


@router.post("/logout-all", status_code=204)
async def logout_all(request: Request) -> Response:
    """Sign this person out of every browser they are signed in on."""
    caller = await _session_caller(request)
    with acting(caller.acting()):
        async with _services(request).db.session() as s:
            closed = await users.close_all_sessions(s, caller.credential)
            s.add(
                AuditEvent(
                    org_id=None,
                    actor=caller.label[:64],
                    action="user.sign_out_everywhere",
                    target_type="user",
                    target_id=caller.credential,
                    details={"sessions": closed},
                )
            )
    return _signed_out()
