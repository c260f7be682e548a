"""The internal fast STT: CMU PocketSphinx with the US-English model its wheel ships.

Three modes, chosen at construction:

- open vocabulary (the generic 3-gram LM): ~0.45 RTF and poor accuracy on synthetic or
  noisy speech; a last-resort fallback;
- grammar: a JSGF grammar, or one built from a list of expected `phrases` (IVR menus,
  deterministic end-to-end tests): exact on in-grammar speech at ~0.02 RTF;
- keywords: spots the given words anywhere in the audio; the transcript is the distinct
  keywords heard, in order.

Decoders are not thread-safe and cost 0.1-0.5 s to build, so the engine keeps a pool of up
to `max_concurrency` of them, built lazily in worker threads and reused.
"""

from __future__ import annotations

import os
import queue
import re
import tempfile
from collections.abc import Sequence
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
        name: str = "internal:pocketsphinx",
    ) -> None:
        if sum(option is not None for option in (phrases, grammar, keywords)) > 1:
            raise ValueError("choose at most one of phrases, grammar and keywords")
        self.name = name
        self.mode: Mode = "lm"
        self._grammar: str | None = None
        self._keywords: list[str] = []
        if phrases is not None:
            grammar = grammar_for_phrases(phrases)
        if grammar is not None:
            self.mode = "grammar"
            self._grammar = grammar
        elif keywords is not None:
            self.mode = "keywords"
            self._keywords = [" ".join(_WORD.findall(k.lower())) for k in keywords]
            if not all(self._keywords):
                raise ValueError("keywords must contain words")
        self.keyword_threshold = keyword_threshold
        self._idle: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._runner = BlockingRunner(max_concurrency, name="pocketsphinx")

    @property
    def model(self) -> str:
        return "en-us" if self.mode == "lm" else f"en-us+{self.mode}"

    async def load(self) -> None:
        """Build one decoder ahead of the first request, surfacing a bad grammar (e.g. a word
        missing from the dictionary) at start-up rather than on the first turn. Optional:
        decoders are otherwise built lazily."""
        decoder = await self._runner.run(self._new_decoder)
        self._idle.put(decoder)

    async def _transcribe(self, pcm16_16k: bytes, language: str | None) -> Transcript:
        if language is not None and language.lower().split("-")[0] != "en":
            raise ProviderError(
                ErrorClass.NOT_FOUND, f"no pocketsphinx model for language {language!r}", provider=self.name
            )
        text = await self._runner.run(self._decode, pcm16_16k)
        return Transcript(
            text=text,
            audio_seconds=len(pcm16_16k) / (2 * STT_SAMPLE_RATE),
            engine=self.name,
            model=self.model,
            language="en",
        )

    def _decode(self, pcm: bytes) -> str:
        """Runs in a worker thread with a decoder nobody else is using."""
        try:
            decoder = self._idle.get_nowait()
        except queue.Empty:
            decoder = self._new_decoder()
        try:
            decoder.start_utt()
            decoder.process_raw(pcm, full_utt=True)
            decoder.end_utt()
            if decoder.hyp() is None:
                return ""
            if self.mode == "keywords":
                heard = [segment.word.strip() for segment in decoder.seg()]
                return " ".join(dict.fromkeys(heard))
            return str(decoder.hyp().hypstr).strip()
        finally:
            self._idle.put(decoder)

    def _new_decoder(self) -> Any:
        if self.mode == "lm":
            return Decoder(samprate=STT_SAMPLE_RATE, loglevel="FATAL")
        decoder = Decoder(samprate=STT_SAMPLE_RATE, lm=None, loglevel="FATAL")
        if self._grammar is not None:
            decoder.add_jsgf_string(_SEARCH, self._grammar)
        else:
            self._add_keywords(decoder)
        decoder.activate_search(_SEARCH)
        return decoder

    def _add_keywords(self, decoder: Any) -> None:
        # PocketSphinx reads several keyphrases with thresholds only from a file.
        handle, path = tempfile.mkstemp(suffix=".kws", text=True)
        try:
            with os.fdopen(handle, "w") as out:
                out.writelines(f"{k} /{self.keyword_threshold:g}/\n" for k in self._keywords)
            decoder.add_kws(_SEARCH, path)
        finally:
            os.unlink(path)
