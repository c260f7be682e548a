"""The one function in Patchbay where a credential's plaintext exists.

Every adapter and engine builds its auth header here, at the moment it builds a request;
the plaintext goes straight into the header dict handed to the HTTP client and is never
stored, logged or attached to an exception.
"""

from __future__ import annotations

from collections.abc import MutableMapping

from providers.contract import AuthStyle
from providers.credentials import Credential

_HEADER = {
    AuthStyle.BEARER: "authorization",
    AuthStyle.X_API_KEY: "x-api-key",
    AuthStyle.X_GOOG_API_KEY: "x-goog-api-key",
    AuthStyle.XI_API_KEY: "xi-api-key",
}


def add_auth_header(
    headers: MutableMapping[str, str], style: AuthStyle, credential: Credential, purpose: str
) -> None:
    """Reveal `credential` for `purpose` (audited) and add it to `headers` in `style`.

    A credential that reveals an empty string (a keyless local endpoint) adds nothing.
    """
    if style is AuthStyle.NONE:
        return
    secret = credential.reveal(purpose)
    if not secret:
        return
    name = _HEADER[style]
    headers[name] = f"Bearer {secret}" if style is AuthStyle.BEARER else secret
