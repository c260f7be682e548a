"""Spoken test audio made with espeak-ng: text in, PCM16 mono 16 kHz out.

Real synthetic speech (not tones) exercises the VAD, the endpointing and the STT engines the
way a caller's voice would. Results are cached per (text, voice, rate), since espeak-ng is
deterministic and tests reuse the same sentences.
"""

from __future__ import annotations

import functools
import subprocess

from tests.offline_voice import require_espeak
from voice.audio import read_wav, resample

SAMPLE_RATE = 16_000

# Everyday requests of 7-12 words. espeak-ng's "evening" and "tonight" are misheard by every
# engine we tried (pocketsphinx and Whisper alike hear "to hide"), a fault of the synthetic
# voice rather than of the STT, so the set avoids them.
SENTENCES = (
    "The quick brown fox jumps over the lazy dog.",
    "Please schedule a meeting with the design team for tomorrow morning.",
    "What time does the pharmacy close on Sunday?",
    "Can you turn off the lights in the kitchen?",
    "The weather today is sunny with a light breeze from the west.",
    "I would like to order two large pizzas and a bottle of water.",
)


@functools.lru_cache(maxsize=64)
def speak(text: str, *, voice: str = "en-us", words_per_minute: int = 160) -> bytes:
    """`text` spoken by espeak-ng as PCM16 mono 16 kHz (the test skips, or under CI fails, without it)."""
    wav = subprocess.run(
        [require_espeak(), "-v", voice, "-s", str(words_per_minute), "--stdout", text],
        check=True,
        capture_output=True,
        timeout=30,
    ).stdout
    # espeak-ng streams its WAV with placeholder sizes; soundfile reads it to the end anyway.
    pcm, rate = read_wav(wav)
    return resample(pcm, rate, SAMPLE_RATE)


def silence(ms: int) -> bytes:
    return b"\x00\x00" * (SAMPLE_RATE * ms // 1000)


def ms_of(pcm: bytes) -> int:
    return len(pcm) * 1000 // (2 * SAMPLE_RATE)
