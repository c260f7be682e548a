from __future__ import annotations

import asyncio

import pytest

from providers.contract import BillingSource, ErrorClass
from providers.errors import ProviderError
from tests.offline_voice import require_module
from tests.voice.speech import SENTENCES, silence, speak
from tests.voice.wer import normalise, word_error_rate

require_module("pocketsphinx", module_level=True)
from voice.stt.pocketsphinx import PocketsphinxSTT, grammar_for_phrases  # noqa: E402  (needs the engine)

MENU = ("check my balance", "talk to an agent", "pay my bill", "report a lost card")


async def test_grammar_mode_transcribes_expected_phrases_exactly() -> None:
    engine = PocketsphinxSTT(phrases=SENTENCES)
    assert engine.billing_source is BillingSource.PLATFORM
    transcripts = [await engine.transcribe(silence(300) + speak(s) + silence(500)) for s in SENTENCES]
    assert word_error_rate(SENTENCES, [t.text for t in transcripts]) == 0.0
    assert {t.engine for t in transcripts} == {"internal:pocketsphinx"}
    assert transcripts[0].model == "en-us+grammar"
    assert transcripts[0].audio_seconds > 2.0


async def test_grammar_mode_picks_the_menu_option_that_was_said() -> None:
    engine = PocketsphinxSTT(phrases=MENU)
    for option in ("Talk to an agent.", "Report a lost card."):
        transcript = await engine.transcribe(speak(option))
        assert normalise(transcript.text) == normalise(option)


async def test_concurrent_segments_each_get_their_own_decoder() -> None:
    engine = PocketsphinxSTT(phrases=MENU, max_concurrency=2)
    said = ["Pay my bill.", "Check my balance.", "Talk to an agent.", "Pay my bill."]
    transcripts = await asyncio.gather(*(engine.transcribe(speak(s)) for s in said))
    assert [normalise(t.text) for t in transcripts] == [normalise(s) for s in said]


async def test_keyword_mode_reports_the_keywords_heard() -> None:
    engine = PocketsphinxSTT(keywords=["kitchen", "pizzas"])
    kitchen = await engine.transcribe(speak("Can you turn off the lights in the kitchen?"))
    assert kitchen.text == "kitchen"
    assert (await engine.transcribe(speak("I would like to order two large pizzas."))).text == "pizzas"
    assert (await engine.transcribe(silence(1000))).text == ""
    assert engine.model == "en-us+keywords"


async def test_open_vocabulary_mode_returns_english_words() -> None:
    engine = PocketsphinxSTT()
    transcript = await engine.transcribe(speak(SENTENCES[0]))
    # The generic LM is poor on synthetic speech (WER ~0.8): only check it produced words.
    assert transcript.model == "en-us"
    assert normalise(transcript.text)


async def test_other_languages_fall_back_to_another_engine() -> None:
    with pytest.raises(ProviderError) as caught:
        await PocketsphinxSTT(phrases=MENU).transcribe(silence(200), language="de")
    assert caught.value.error_class is ErrorClass.NOT_FOUND
    assert caught.value.fallback_eligible


def test_grammar_from_phrases_ignores_case_punctuation_and_duplicates() -> None:
    grammar = grammar_for_phrases(["Pay my bill!", "pay my bill", "Talk, to an agent."])
    assert grammar.endswith("public <phrase> = pay my bill | talk to an agent;\n")
    with pytest.raises(ValueError):
        grammar_for_phrases(["?!"])


def test_modes_are_exclusive() -> None:
    with pytest.raises(ValueError):
        PocketsphinxSTT(phrases=MENU, keywords=["bill"])


async def test_load_surfaces_words_missing_from_the_dictionary() -> None:
    with pytest.raises(ValueError):
        await PocketsphinxSTT(phrases=["zzxqv blorf"]).load()
