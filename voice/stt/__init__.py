"""Speech-to-text in voice: the built-in offline engines (`voice.stt.whisper`,
`voice.stt.pocketsphinx`), imported from their modules so that importing this package never
loads a model library. The engine seam is `providers.speech.base`; chains and fallback are
`routing.speech`'s."""
