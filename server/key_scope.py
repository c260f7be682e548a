"""What a server API key may do: the rules for its name, model list and expiry, and the checks.

Pure functions, no I/O: `accounts` validates with them when a key is created, and every surface
that takes a key (`/v1`, realtime) checks a request against the `Principal` it has in memory.

A key's model list names models as clients send them in `model`: a ref (`openai/gpt-4o-mini`),
an alias of the catalog (`sonnet`), an agent (`agent:support`), or `default` for "let the route
choose" (`default`, `auto`, an empty model, and OpenAI's realtime model names all mean that).
An alias and the ref it stands for are the same model, and a ref naming one connection
(`openai:second/gpt-4o`) is the model of its provider (`openai/gpt-4o`), as in the org's
allowlist.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from enum import StrEnum

from foundation.errors import RequestError
from routing.catalog import Catalog

MAX_NAME_CHARS = 128
MAX_MODELS = 100
MAX_MODEL_CHARS = 200
ROUTE_DEFAULT = "default"
"""The list entry that lets a key leave the choice of model to the route."""
_ROUTE_CHOOSES = frozenset({"", "default", "auto"})
_SHOWN_MODELS = 10


class KeyStatus(StrEnum):
    ACTIVE = "active"
    EXPIRED = "expired"
    REVOKED = "revoked"


def key_status(revoked_at: datetime | None, expires_at: datetime | None, now: datetime) -> KeyStatus:
    if revoked_at is not None:
        return KeyStatus.REVOKED
    if expires_at is not None and expires_at <= now:
        return KeyStatus.EXPIRED
    return KeyStatus.ACTIVE


def check_name(name: str | None) -> str:
    """A new key's name: 1-128 printable characters once surrounding spaces are trimmed."""
    name = (name or "").strip()
    if not name:
        raise RequestError(
            "a key needs a name (1-128 characters) that tells it apart from the org's other keys",
            param="name",
        )
    if len(name) > MAX_NAME_CHARS:
        raise RequestError(
            f"a key's name may have at most {MAX_NAME_CHARS} characters, not {len(name)}", param="name"
        )
    if not name.isprintable():
        raise RequestError("a key's name may not contain control characters", param="name")
    return name


def check_models(models: Sequence[str] | None) -> list[str] | None:
    """The model list as stored: trimmed, without repeats; None (any model) for none or an empty list."""
    if not models:
        return None
    if len(models) > MAX_MODELS:
        raise RequestError(f"a key may list at most {MAX_MODELS} models, not {len(models)}", param="models")
    out: list[str] = []
    seen: set[str] = set()
    for entry in models:
        model = entry.strip() if isinstance(entry, str) else ""
        if not model:
            raise RequestError("a key's model list may not contain empty entries", param="models")
        if len(model) > MAX_MODEL_CHARS:
            raise RequestError(
                f"model {model[:40]!r}... is longer than {MAX_MODEL_CHARS} characters", param="models"
            )
        if not model.isprintable() or any(c.isspace() for c in model):
            raise RequestError(
                f"model {model!r} may not contain spaces or control characters", param="models"
            )
        if model.lower() not in seen:
            seen.add(model.lower())
            out.append(model)
    return out


def _canonical(model: str, catalog: Catalog) -> str:
    name = model.strip().lower()
    if name in _ROUTE_CHOOSES:
        return ROUTE_DEFAULT
    if "/" in name:
        provider, _, rest = name.partition("/")
        return f"{provider.partition(':')[0]}/{rest}"
    alias = catalog.alias(name)
    return str(alias).lower() if alias is not None else name


def model_allowed(allowed: frozenset[str] | None, requested: str | None, catalog: Catalog) -> bool:
    """May a key with model list `allowed` (lower-cased; None: any) ask for `requested`?"""
    if allowed is None:
        return True
    name = (requested or "").strip().lower()
    if name in allowed:
        return True
    wanted = _canonical(name, catalog)
    return wanted in allowed or any(_canonical(entry, catalog) == wanted for entry in allowed)


def describe_models(models: Iterable[str]) -> str:
    """The list for an error message, cut short when it is long."""
    names = sorted(models)
    shown = ", ".join(names[:_SHOWN_MODELS])
    more = len(names) - _SHOWN_MODELS
    return shown + (f" and {more} more" if more > 0 else "")
