"""Speech engines behind one seam: the STT/TTS base classes, the cloud engines per vendor wire
(ElevenLabs, OpenAI-compatible audio), their one error table and the builder tables that turn a
connection's plain values into an engine. The offline engines live in voice/ and subclass the
same base."""
