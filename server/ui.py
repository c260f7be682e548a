"""The web UI: static files from `server/web/` under `/ui/`, with strict security headers.

The pages are plain HTML, one CSS file and ES modules, with no build step and no external
asset, so they work offline. They talk only to `/auth` and the admin API: with a person's
session cookie (and its CSRF token on every change) or with an admin token kept in
sessionStorage and sent as a bearer header. The server side is only this mount; all
behaviour is in the admin API (docs/ui.md).

Every page is served with `Permissions-Policy: microphone=()` except the playground
(`/ui/playground`, `web/playground.html`), the one page allowed the microphone
(`microphone=(self)`): a policy is per document, so it is a page of its own rather than a route
of the single-page admin UI, and only that URL carries the policy that lets it talk.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, RedirectResponse
from starlette.staticfiles import StaticFiles

from server.fixed_headers import FixedHeaders

WEB_DIR = Path(__file__).parent / "web"

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)


def _security_headers(permissions: bytes) -> tuple[tuple[bytes, bytes], ...]:
    return (
        (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
        (b"referrer-policy", b"no-referrer"),
        (b"cross-origin-opener-policy", b"same-origin"),
        (b"cross-origin-resource-policy", b"same-origin"),
        (b"permissions-policy", permissions),
        # Revalidate every load (StaticFiles answers 304 on a matching ETag), so an upgraded
        # server never runs next to a stale module from the browser cache.
        (b"cache-control", b"no-cache"),
    )


SECURITY_HEADERS = _security_headers(b"camera=(), microphone=(), geolocation=()")
PLAYGROUND_HEADERS = _security_headers(b"camera=(), microphone=(self), geolocation=()")
PLAYGROUND_PAGE = WEB_DIR / "playground.html"


def mount_ui(app: FastAPI) -> None:
    """Serve the UI at `/ui/` (the playground at `/ui/playground`) and send `/` there."""

    @app.get("/ui/playground", include_in_schema=False)
    async def playground() -> FileResponse:
        headers = {name.decode(): value.decode() for name, value in PLAYGROUND_HEADERS}
        return FileResponse(PLAYGROUND_PAGE, media_type="text/html", headers=headers)

    app.mount("/ui", FixedHeaders(StaticFiles(directory=WEB_DIR, html=True), SECURITY_HEADERS), name="ui")

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/ui/", status_code=307)
