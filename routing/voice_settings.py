"""An agent's voice settings: the TTS voice, instructions, language and output audio format
its voice sessions start with.

They live in the agent row's `settings` JSON (flat keys, so other settings can share the
column). `apply_changes` validates what an admin sends and raises `RequestError` naming the
field (`voice_settings.language`); `from_stored` reads the column back without raising, so a
value written by an older or newer release costs a warning, not the org's routing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from foundation.errors import RequestError

OUTPUT_FORMATS: tuple[str, ...] = ("pcm16", "g711_ulaw", "g711_alaw")
"""The realtime wire's output audio format names (PCM16 at 24 kHz, G.711 µ-law and A-law at 8 kHz).
Routing cannot import the wire; a test keeps this equal to the formats it accepts."""

MAX_VOICE_CHARS = 128
MAX_INSTRUCTIONS_BYTES = 32 * 1024
PARAM_PREFIX = "voice_settings"

# BCP 47's common shape: a 2-3 letter language, then optional script, region or variant subtags.
_LANGUAGE = re.compile(r"[A-Za-z]{2,3}(?:-[A-Za-z0-9]{2,8})*")


@dataclass(frozen=True, slots=True)
class VoiceSettings:
    """None everywhere means "the server's defaults"."""

    voice: str | None = None
    """The TTS voice id, as the agent's TTS engines know it."""
    instructions: str | None = None
    """The system prompt of the agent's voice sessions."""
    language: str | None = None
    """The language spoken to the agent, handed to its STT engines (`en`, `en-US`)."""
    output_format: str | None = None
    """One of OUTPUT_FORMATS."""

    @property
    def empty(self) -> bool:
        return self == _EMPTY

    def to_stored(self) -> dict[str, str]:
        """The keys to put into the agent's `settings` JSON (unset fields are left out)."""
        return {f.name: value for f in fields(self) if (value := getattr(self, f.name)) is not None}


_EMPTY = VoiceSettings()
FIELDS: tuple[str, ...] = tuple(f.name for f in fields(VoiceSettings))


def normalize_language(raw: str) -> str:
    """`en-us` -> `en-US`: lower-case language, title-case script, upper-case region."""
    if not _LANGUAGE.fullmatch(raw):
        raise ValueError(f"{raw!r} is not a language code such as en or en-US")
    first, *rest = raw.split("-")
    subtags = [first.lower()]
    for tag in rest:
        if len(tag) == 4 and tag.isalpha():
            subtags.append(tag.title())
        elif len(tag) == 2 and tag.isalpha():
            subtags.append(tag.upper())
        else:
            subtags.append(tag.lower())
    return "-".join(subtags)


def _validated(name: str, raw: str) -> str | None:
    """One field's value, normalized; an empty or blank value clears the field."""
    if name == "instructions":
        if len(raw.encode("utf-8")) > MAX_INSTRUCTIONS_BYTES:
            raise ValueError(f"instructions are at most {MAX_INSTRUCTIONS_BYTES // 1024} KB")
        return raw if raw.strip() else None
    value = raw.strip()
    if not value:
        return None
    if name == "voice":
        if len(value) > MAX_VOICE_CHARS or not value.isprintable():
            raise ValueError(f"a voice id is 1-{MAX_VOICE_CHARS} printable characters")
        return value
    if name == "language":
        return normalize_language(value)
    if value.lower() not in OUTPUT_FORMATS:
        raise ValueError(f"unknown output format {value!r}; use one of {', '.join(OUTPUT_FORMATS)}")
    return value.lower()


def apply_changes(current: VoiceSettings, changes: Mapping[str, str | None]) -> VoiceSettings:
    """`current` with `changes` applied: None leaves a field alone, an empty string clears it.

    Raises `RequestError` whose `param` names the field at fault (`voice_settings.voice`)."""
    updates: dict[str, str | None] = {}
    for name, raw in changes.items():
        if name not in FIELDS:
            raise RequestError(f"unknown voice setting {name!r}", param=f"{PARAM_PREFIX}.{name}")
        if raw is None:
            continue
        try:
            updates[name] = _validated(name, raw)
        except ValueError as exc:
            raise RequestError(str(exc), param=f"{PARAM_PREFIX}.{name}") from None
    return replace(current, **updates)


def from_stored(raw: Mapping[str, Any] | None, warnings: list[str] | None = None) -> VoiceSettings:
    """The settings kept in an agent's `settings` JSON; a value that no longer validates is
    dropped and, when `warnings` is given, named there."""
    values: dict[str, str | None] = {}
    for name in FIELDS:
        value = (raw or {}).get(name)
        if value is None:
            continue
        try:
            if not isinstance(value, str):
                raise ValueError("not a string")
            values[name] = _validated(name, value)
        except ValueError:
            if warnings is not None:
                warnings.append(f"voice setting {name} is not valid and is ignored")
    return VoiceSettings(**values)


def stored_with(settings: Mapping[str, Any] | None, voice: VoiceSettings) -> dict[str, Any]:
    """An agent's `settings` JSON with its voice keys replaced by `voice`'s, other keys kept."""
    kept = {k: v for k, v in (settings or {}).items() if k not in FIELDS}
    return {**kept, **voice.to_stored()}
