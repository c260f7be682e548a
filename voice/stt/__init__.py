"""Speech-to-text in voice: the fallback chain and the internal offline engines.

The engine seam is providers.speech.base. The internal engines (`voice.stt.whisper`,
`voice.stt.pocketsphinx`) are imported from their modules so that importing this package never
loads a model library.
"""

from voice.stt.fallback import Attempt, FallbackSTT

__all__ = ["Attempt", "FallbackSTT"]
