"""The `/v1/realtime` WebSocket transport: OpenAI Realtime events to and from a voice session."""
