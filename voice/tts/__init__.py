"""Text-to-speech engines: the seam, the fallback chain and the internal espeak-ng engine."""

from voice.tts.base import TTSEngine
from voice.tts.fallback import FallbackTTS

__all__ = ["FallbackTTS", "TTSEngine"]
