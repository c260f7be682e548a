"""How much audio a text may come back as: the bound on a text-to-speech stream that never ends.

A TTS reply is streamed on to the caller as it comes, so no size bound on a body read whole
applies. An engine that never ends its audio (a broken or hostile private endpoint) would
otherwise keep a voice turn speaking, and its audio queued for the client, without limit.
Speech runs at about 15 characters a second, slow speech at 5 (0.2 s a character): the
bound, `FLOOR_SECONDS` plus `SECONDS_PER_CHARACTER` for each character sent, is well above
any real reading of the text and stops an endless stream after that much audio.
"""

from __future__ import annotations

from providers.contract import ErrorClass
from providers.errors import ProviderError

FLOOR_SECONDS = 10.0
SECONDS_PER_CHARACTER = 0.5


def audio_bound_bytes(characters: int, sample_rate: int) -> int:
    """The most PCM16 mono bytes, at `sample_rate`, that `characters` of text may be spoken as."""
    return int((FLOOR_SECONDS + SECONDS_PER_CHARACTER * characters) * sample_rate) * 2


def too_much_audio(provider: str, characters: int, sample_rate: int) -> ProviderError:
    """The error that ends a stream past `audio_bound_bytes`: the engine's fault, not the caller's."""
    seconds = audio_bound_bytes(characters, sample_rate) / (2 * sample_rate)
    return ProviderError(
        ErrorClass.SERVER_ERROR,
        f"{provider} sent more than {seconds:,.1f} s of audio for {characters:,} characters of text, "
        "far more than speaking it takes; the stream was cut off there",
        provider=provider,
    )
