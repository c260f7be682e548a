"""Text-to-speech in voice: the built-in espeak-ng engine. The engine seam is
`providers.speech.base`; chains and fallback are `routing.speech`'s."""
