"""Keeping keys out of provider text: the secrets a request carried in its auth headers
(`secrets_in`) and the removal of those, and of anything key-shaped, from what a provider wrote
back (`redact`), before an error message, a log line or a trace carries it."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

SECRET_HEADERS = frozenset({"authorization", "x-api-key", "x-goog-api-key", "xi-api-key", "api-key"})

# Key-shaped tokens some providers echo back (whole or partly masked) in 401 bodies.
_KEY_LIKE = re.compile(r"\b(?:sk|xai|pk|rk)-[A-Za-z0-9_\-*.]{6,}|\bAIza[A-Za-z0-9_\-]{20,}")


def secrets_in(headers: Mapping[str, str]) -> tuple[str, ...]:
    """The secret values carried by auth headers, for `redact`."""
    found: list[str] = []
    for name, value in headers.items():
        if name.lower() in SECRET_HEADERS and value:
            found.append(value)
            scheme, _, token = value.partition(" ")
            if token and scheme.lower() in ("bearer", "basic", "token"):
                found.append(token)
    return tuple(s for s in found if len(s) >= 4)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Remove every occurrence of `secrets` and anything key-shaped from provider text."""
    for secret in sorted(set(secrets), key=len, reverse=True):
        if secret:
            text = text.replace(secret, "[redacted]")
    return _KEY_LIKE.sub("[redacted]", text)
