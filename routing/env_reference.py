"""Which server environment variables a connection may name as its key (`env_reference`).

An environment reference makes the server send the named variable's value as a bearer key
to the connection's upstream, which its creator chooses. Left open, that would hand out the
vault master key or the admin token, so only names the operator lists in
PATCHBAY_ENV_REFERENCE_ALLOW may be referenced, and never a `PATCHBAY_*` name (the server's
own settings, read case-insensitively by the settings loader), even when listed.

The rule is checked twice: when a connection is saved (`check_env_reference`), and where the
key is read, through `allowed_environ`, the only part of the environment the registry is
given; so a row saved before the rule, or written straight into the database, leaks nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from foundation.errors import RequestError

ALLOW_SETTING = "PATCHBAY_ENV_REFERENCE_ALLOW"
RESERVED_PREFIX = "PATCHBAY_"


def is_reserved(name: str) -> bool:
    """True for the server's own settings, which no connection may reference."""
    return name.strip().upper().startswith(RESERVED_PREFIX)


def parse_allowlist(text: str) -> frozenset[str]:
    """The comma-separated allowlist setting; a `PATCHBAY_*` name in it is a configuration error."""
    names = frozenset(n.strip() for n in text.split(",") if n.strip())
    reserved = sorted(n for n in names if is_reserved(n))
    if reserved:
        raise ValueError(
            f"{', '.join(reserved)} cannot be listed in {ALLOW_SETTING}: {RESERVED_PREFIX}* variables are "
            "the server's own settings and secrets, never a connection's key"
        )
    return names


def check_env_reference(name: str, allowed: frozenset[str]) -> str:
    """Save-time check; returns the name to store or raises `RequestError` naming the setting."""
    name = name.strip()
    if not name:
        raise RequestError("an environment reference needs a variable name", param="env_reference")
    if is_reserved(name):
        raise RequestError(
            f"{name} is one of the server's own settings and can never be a connection's key",
            param="env_reference",
        )
    if name not in allowed:
        raise RequestError(
            f"environment variable {name} is not allowed as a connection key; "
            f"the operator can add it to {ALLOW_SETTING}",
            param="env_reference",
        )
    return name


def allowed_environ(allowed: Iterable[str], environ: Mapping[str, str]) -> dict[str, str]:
    """The part of `environ` connections may read: allowlisted, set, and never `PATCHBAY_*`."""
    return {n: environ[n] for n in allowed if not is_reserved(n) and n in environ}
