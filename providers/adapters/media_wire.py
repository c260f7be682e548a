"""Split `data:` URLs into media type and base64 payload, for wires that want them apart."""

from __future__ import annotations

from dataclasses import dataclass

_AUDIO_MIME = {
    "wav": "audio/wav",
    "mp3": "audio/mp3",
    "aiff": "audio/aiff",
    "aac": "audio/aac",
    "ogg": "audio/ogg",
    "flac": "audio/flac",
}


@dataclass(frozen=True, slots=True)
class InlineData:
    media_type: str
    data_b64: str


def parse_data_url(url: str) -> InlineData | None:
    """`data:<type>;base64,<payload>` → InlineData; any other URL (or a non-base64 data URL) → None."""
    if not url.startswith("data:"):
        return None
    header, sep, payload = url[5:].partition(",")
    if not sep:
        return None
    media_type, _, params = header.partition(";")
    if "base64" not in params.split(";"):
        return None
    return InlineData(media_type=media_type or "application/octet-stream", data_b64=payload)


def audio_mime_type(fmt: str) -> str:
    """The MIME type for a normalized audio format name (`wav`, `mp3`, ...)."""
    fmt = fmt.lower()
    return _AUDIO_MIME.get(fmt, f"audio/{fmt}")
