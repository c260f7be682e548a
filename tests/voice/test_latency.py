"""Turn latency on a virtual clock: provider time is subtracted from the server's share."""

from __future__ import annotations

from voice.clock import ManualClock
from voice.latency import LatencyStats, TurnLatency


async def test_server_time_excludes_provider_time() -> None:
    clock = ManualClock()
    turn = TurnLatency(clock)
    for name, step in [
        ("speech_end", 0.0),
        ("stt_start", 0.002),
        ("transcript", 0.300),
        ("llm_request", 0.001),
        ("llm_first_token", 0.200),
        ("tts_request", 0.003),
        ("tts_first_byte", 0.050),
        ("first_audio", 0.001),
    ]:
        await clock.advance(step)
        turn.mark(name)
    assert turn.ttfb_ms == {"stt": 300.0, "llm": 200.0, "tts": 50.0}
    assert turn.v2v_ms == 557.0
    assert turn.server_ms == 7.0
    assert turn.since_speech_end_ms == {
        "transcript": 302.0,
        "llm_first_token": 503.0,
        "tts_first_byte": 556.0,
        "first_audio": 557.0,
    }
    turn.mark("speech_end")  # marks are kept from the first occurrence
    assert turn.v2v_ms == 557.0


def test_stats_percentiles() -> None:
    clock = ManualClock()
    stats = LatencyStats(window=100)
    for ms in range(1, 101):
        turn = TurnLatency(clock, llm_request=0.0, first_audio=ms / 1000)
        stats.observe(turn)
    snapshot = stats.snapshot()
    assert snapshot["turns"] == 100
    assert snapshot["server_ms"]["p50"] == 51.0 and snapshot["server_ms"]["p95"] == 96.0


def test_stats_series_and_clear() -> None:
    clock = ManualClock()
    stats = LatencyStats(window=3)
    for ms in (5, 6, 7, 8):
        stats.observe(TurnLatency(clock, llm_request=0.0, first_audio=ms / 1000))
    assert stats.series("server_ms") == [6.0, 7.0, 8.0]  # the window's, oldest first
    assert stats.series("nothing") == []
    stats.clear()
    assert stats.series("server_ms") == [] and stats.turns == 4
    stats.observe(TurnLatency(clock, llm_request=0.0, first_audio=0.009))
    assert stats.series("server_ms") == [9.0]
