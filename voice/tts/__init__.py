"""Text-to-speech in voice: the fallback chain and the internal espeak-ng engine (the engine
seam is providers.speech.base)."""

from voice.tts.fallback import FallbackTTS

__all__ = ["FallbackTTS"]
