"""Voice-to-voice latency with the internal engines, and Whisper's WER on the test set.

One realtime voice session per utterance, in this process (no socket: the outbox is where
the transport reads what the client gets, so "at the client" here is the outbox, minus a
loopback hop of well under a millisecond): the real Whisper STT (`voice.stt.whisper`, the
model under `--model-dir`), the real espeak-ng TTS, and an LLM that answers at once (a
zero-delay stand-in, so the figures are the voice path's own). Each utterance (the WER test
set's espeak-ng sentences, `tests/voice/speech.py`, plus one ~10 s utterance of three of them)
is streamed as 24 kHz PCM16 in 20 ms frames paced in real time, after 300 ms of silence and
followed by 2 s of it, with the server VAD at its defaults.

Reported, p50 and max over every turn of `--rounds` rounds:
- `speech_end→audio`: from the moment the frame holding the utterance's last audible sample
  was sent to the first reply audio delta: "after the caller stops speaking";
- `endpoint→audio`: from `input_audio_buffer.speech_stopped` (the endpoint) to that delta;
- `endpoint→transcript`: from the endpoint to the transcript, for the ~10 s utterance apart;
- `silence`: the endpointing silence the turn waited (end of speech to the endpoint).
`--wer` first prints the corpus WER of `WhisperSTT.transcribe` over the test set, the measure
`tests/voice/stt/test_whisper.py` asserts. Uses only APIs older builds also have, so the same
file run from an older checkout measures "before". The machine's load average is printed
with the figures (Whisper is CPU-bound: a loaded machine is slower).

The first lines of the summary are the headline, `speech end -> first audio p50`, and its
two parts: `speech end -> endpoint` (the endpointing silence and the VAD's hang-over) and
`endpoint -> first audio` (what the server does after the turn ends). `--sentence-silence-ms`
and `--pause-ms` set the endpoint policy (the session defaults otherwise).

    .venv/bin/python bench/voice_latency.py --wer --rounds 3 [--model-dir DIR] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson

from providers.contract import BillingSource
from providers.types import ChatRequest, Finish, FinishReason, StreamEvent, TextDelta
from tests.voice.speech import SENTENCES, speak
from tests.voice.wer import word_error_rate
from voice.audio import resample
from voice.config import SessionConfig
from voice.endpointing import TurnDetectionConfig
from voice.events import AudioDelta, InputTranscriptCompleted, ResponseDone, SpeechStopped
from voice.llm import ServedBy
from voice.session import VoiceSession
from voice.stt.whisper import WhisperSTT
from voice.tts.espeak import EspeakTTS
from voice.turn import SessionContext

RATE = 24_000
FRAME_BYTES = RATE * 2 * 20 // 1000
AUDIBLE = 300
"""A sample above this (of 32767) is speech; espeak-ng's own trailing samples are below it."""
LONG = " ".join((SENTENCES[1], SENTENCES[4], SENTENCES[5]))
REPLY = "Sure, I can help with that. "


class _InstantStream:
    def __init__(self) -> None:
        self.served: ServedBy | None = ServedBy("bench", None, BillingSource.PLATFORM)

    def __aiter__(self) -> AsyncIterator[StreamEvent]:
        return self._events()

    async def _events(self) -> AsyncIterator[StreamEvent]:
        yield TextDelta(REPLY)
        yield Finish(FinishReason.STOP)


class InstantLLM:
    """A zero-delay LLM: the reply's text is there the moment it is asked for."""

    records_usage = False

    def stream(self, request: ChatRequest, *, turn_id: str) -> _InstantStream:
        return _InstantStream()


def _audible_end(pcm: bytes) -> int:
    """Byte offset just past the last audible sample."""
    samples = memoryview(pcm).cast("h")
    for i in range(len(samples) - 1, -1, -1):
        if abs(samples[i]) > AUDIBLE:
            return (i + 1) * 2
    return 0


async def one_turn(
    stt: WhisperSTT, tts: EspeakTTS, text: str, config: SessionConfig | None = None
) -> dict[str, Any]:
    speech = resample(speak(text), 16_000, RATE)
    audio = bytes(RATE * 2 * 300 // 1000) + speech + bytes(RATE * 2 * 2)
    last_frame = (RATE * 2 * 300 // 1000 + _audible_end(speech)) // FRAME_BYTES
    session = VoiceSession(
        SessionContext("org_bench", "sess_bench"), stt=stt, tts=tts, llm=InstantLLM(), config=config
    )
    marks: dict[str, float] = {}
    heard: list[str] = []

    async def read() -> None:
        while True:
            event = await session.outbox.get()
            now = time.perf_counter()
            if isinstance(event, SpeechStopped):
                marks.setdefault("endpoint", now)
            elif isinstance(event, InputTranscriptCompleted):
                marks.setdefault("transcript", now)
                heard.append(event.transcript)
            elif isinstance(event, AudioDelta):
                marks.setdefault("audio", now)
            elif isinstance(event, ResponseDone):
                return

    reader = asyncio.create_task(read())
    start = time.perf_counter()
    for index in range(len(audio) // FRAME_BYTES):
        delay = start + index * 0.02 - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        session.append_audio(audio[index * FRAME_BYTES : (index + 1) * FRAME_BYTES])
        if index == last_frame:
            marks["speech_end"] = time.perf_counter()
        if reader.done():
            break
    await asyncio.wait_for(reader, 30)
    await session.aclose()

    def ms(a: str, b: str) -> float | None:
        return round((marks[b] - marks[a]) * 1000, 1) if a in marks and b in marks else None

    return {
        "text": text,
        "heard": heard[0] if heard else "",
        "speech_end→audio": ms("speech_end", "audio"),
        "endpoint→audio": ms("endpoint", "audio"),
        "endpoint→transcript": ms("endpoint", "transcript"),
        "silence": ms("speech_end", "endpoint"),
    }


def _summary(turns: list[dict[str, Any]], field: str) -> str:
    values = [t[field] for t in turns if t[field] is not None]
    if not values:
        return f"{field}: n/a"
    return f"{field}: p50 {statistics.median(values):.0f} ms, max {max(values):.0f} ms (n={len(values)})"


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model-dir", type=Path, default=Path("var/models/whisper-base"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--wer", action="store_true", help="print Whisper's WER on the test set first")
    parser.add_argument("--json", type=Path, help="also write every turn's figures here")
    parser.add_argument("--sentence-silence-ms", type=int, help="silence after a complete sentence")
    parser.add_argument("--pause-ms", type=int, help="unvoiced audio that counts as a pause")
    args = parser.parse_args()
    policy = {
        name: value
        for name, value in (("sentence_silence_ms", args.sentence_silence_ms), ("pause_ms", args.pause_ms))
        if value is not None
    }
    config = SessionConfig(turn_detection=replace(TurnDetectionConfig(), **policy))
    print(f"endpoint policy: {config.turn_detection}")
    stt, tts = WhisperSTT(args.model_dir, language="en"), EspeakTTS()
    await stt.load()
    print(f"load average before: {os.getloadavg()}, {os.cpu_count()} CPUs")
    result: dict[str, Any] = {"load_before": os.getloadavg()}
    if args.wer:
        hypotheses = [(await stt.transcribe(speak(s))).text for s in SENTENCES]
        result["wer"] = word_error_rate(SENTENCES, hypotheses)
        print(f"WER on the test set ({len(SENTENCES)} sentences): {result['wer']:.4f}")
    await one_turn(stt, tts, SENTENCES[0], config)  # warm-up: first decode, first espeak-ng
    short: list[dict[str, Any]] = []
    long: list[dict[str, Any]] = []
    for _ in range(args.rounds):
        for text in SENTENCES:
            short.append(await one_turn(stt, tts, text, config))
        long.append(await one_turn(stt, tts, LONG, config))
    result.update(short=short, long=long, load_after=os.getloadavg())
    every = short + long
    print(f"all {len(every)} turns:")
    print("  speech end -> first audio " + _summary(every, "speech_end→audio").partition(": ")[2])
    print("    = speech end -> endpoint " + _summary(every, "silence").partition(": ")[2])
    print("    + endpoint -> first audio " + _summary(every, "endpoint→audio").partition(": ")[2])
    for name, turns in (("sentences (2-4 s)", short), ("~10 s utterance", long)):
        print(f"{name}:")
        for field in ("speech_end→audio", "endpoint→audio", "endpoint→transcript", "silence"):
            print("  " + _summary(turns, field))
    heard = [t["heard"] for t in short + long]
    print(f"session-path WER: {word_error_rate([t['text'] for t in short + long], heard):.4f}")
    print(f"load average after: {result['load_after']}")
    if args.json:
        args.json.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))


if __name__ == "__main__":
    asyncio.run(main())
