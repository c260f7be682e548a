"""The internal fast STT: CMU PocketSphinx with the US-English model its wheel ships.

Three modes, chosen at construction:

- open vocabulary (the generic 3-gram LM): ~0.45 RTF and poor accuracy on synthetic or
  noisy speech; a last-resort fallback;
- grammar: a JSGF grammar, or one built from a list of expected `phrases` (IVR menus,
  deterministic end-to-end tests): exact on in-grammar speech at ~0.02 RTF;
- keywords: spots the given words anywhere in the audio; the transcript is the distinct
  keywords heard, in order.

PocketSphinx holds the GIL for a whole decode (a minute of open-vocabulary audio takes tens
of seconds), so a worker thread would still stall the event loop: decoding runs in up to
`max_concurrency` worker processes, each API key using at most `max_per_key` of them at
once. Decoders cost 0.1-0.5 s to build, so each worker process builds one per configuration
on first use and reuses it (a process decodes one segment at a time).
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pocketsphinx import Decoder

from providers.contract import BillingSource, ErrorClass
from providers.errors import ProviderError
from providers.speech.base import STT_SAMPLE_RATE, STTEngine, Transcript
from voice.stt.worker import BlockingRunner

Mode = Literal["lm", "grammar", "keywords"]
_SEARCH = "expected"
_WORD = re.compile(r"[a-z']+")


def grammar_for_phrases(phrases: Sequence[str]) -> str:
    """A JSGF grammar accepting exactly one of `phrases` (case and punctuation ignored)."""
    alternatives = [" ".join(_WORD.findall(phrase.lower())) for phrase in phrases]
    alternatives = [a for a in dict.fromkeys(alternatives) if a]
    if not alternatives:
        raise ValueError("a grammar needs at least one phrase with words in it")
    return "#JSGF V1.0;\ngrammar expected;\npublic <phrase> = " + " | ".join(alternatives) + ";\n"


class PocketsphinxSTT(STTEngine):
    billing_source = BillingSource.PLATFORM

    def __init__(
        self,
        *,
        phrases: Sequence[str] | None = None,
        grammar: str | None = None,
        keywords: Sequence[str] | None = None,
        keyword_threshold: float = 1e-20,
        max_concurrency: int = 2,
        max_per_key: int | None = None,
        name: str = "internal:pocketsphinx",
    ) -> None:
        if sum(option is not None for option in (phrases, grammar, keywords)) > 1:
            raise ValueError("choose at most one of phrases, grammar and keywords")
        self.name = name
        mode: Mode = "lm"
        grammar_text: str | None = None
        words: tuple[str, ...] = ()
        if phrases is not None:
            grammar = grammar_for_phrases(phrases)
        if grammar is not None:
            mode, grammar_text = "grammar", grammar
        elif keywords is not None:
            mode = "keywords"
            words = tuple(" ".join(_WORD.findall(k.lower())) for k in keywords)
            if not all(words):
                raise ValueError("keywords must contain words")
        self.mode = mode
        self.keyword_threshold = keyword_threshold
        self._config = DecoderConfig(mode, grammar_text, words, keyword_threshold)
        self._runner = BlockingRunner(
            max_concurrency, name="pocketsphinx", per_caller=max_per_key, processes=True
        )

    @property
    def model(self) -> str:
        return "en-us" if self.mode == "lm" else f"en-us+{self.mode}"

    async def load(self) -> None:
        """Start a worker and build a decoder ahead of the first request, surfacing a bad
        grammar (e.g. a word missing from the dictionary) at start-up rather than on the first
        turn. Optional: decoders are otherwise built on first use."""
        await self._runner.run(_warm, self._config)

    async def _transcribe(self, pcm16_16k: bytes, language: str | None) -> Transcript:
        if language is not None and language.lower().split("-")[0] != "en":
            raise ProviderError(
                ErrorClass.NOT_FOUND, f"no pocketsphinx model for language {language!r}", provider=self.name
            )
        text = await self._runner.run(_decode, self._config, pcm16_16k)
        return Transcript(
            text=text,
            audio_seconds=len(pcm16_16k) / (2 * STT_SAMPLE_RATE),
            engine=self.name,
            model=self.model,
            language="en",
        )

    def close(self) -> None:
        """Stop the worker processes (they also stop when the server exits)."""
        self._runner.close()


@dataclass(frozen=True, slots=True)
class DecoderConfig:
    """What a worker process needs to build a decoder: picklable, and hashable as a cache key."""

    mode: Mode
    grammar: str | None
    keywords: tuple[str, ...]
    keyword_threshold: float


_decoders: dict[DecoderConfig, Any] = {}
"""This worker process's decoders; a worker runs one job at a time, so one per configuration."""


def _decoder(config: DecoderConfig) -> Any:
    decoder = _decoders.get(config)
    if decoder is None:
        decoder = _decoders[config] = _new_decoder(config)
    return decoder


def _warm(config: DecoderConfig) -> None:
    _decoder(config)


def _decode(config: DecoderConfig, pcm: bytes) -> str:
    """Runs in a worker process."""
    decoder = _decoder(config)
    decoder.start_utt()
    decoder.process_raw(pcm, full_utt=True)
    decoder.end_utt()
    if decoder.hyp() is None:
        return ""
    if config.mode == "keywords":
        heard = [segment.word.strip() for segment in decoder.seg()]
        return " ".join(dict.fromkeys(heard))
    return str(decoder.hyp().hypstr).strip()


def _new_decoder(config: DecoderConfig) -> Any:
    if config.mode == "lm":
        return Decoder(samprate=STT_SAMPLE_RATE, loglevel="FATAL")
    decoder = Decoder(samprate=STT_SAMPLE_RATE, lm=None, loglevel="FATAL")
    if config.grammar is not None:
        decoder.add_jsgf_string(_SEARCH, config.grammar)
    else:
        _add_keywords(decoder, config)
    decoder.activate_search(_SEARCH)
    return decoder


def _add_keywords(decoder: Any, config: DecoderConfig) -> None:
    # PocketSphinx reads several keyphrases with thresholds only from a file.
    handle, path = tempfile.mkstemp(suffix=".kws", text=True)
    try:
        with os.fdopen(handle, "w") as out:
            out.writelines(f"{k} /{config.keyword_threshold:g}/\n" for k in config.keywords)
        decoder.add_kws(_SEARCH, path)
    finally:
        os.unlink(path)
