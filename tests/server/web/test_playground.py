"""The playground page (/ui/playground) in a real Chromium against a real Patchbay: issue 17's
acceptance for the playground.

One browser, one server, one test. Signed in with the operator token, the page is reached from
the admin pages' nav, picks the org's agent, and makes itself a short-lived key through the
admin API. Chat: a streamed reply with its serving connection, cost and route trace. Voice:
Chromium's fake microphone plays one WAV made with espeak-ng holding two utterances, a
question, then, while the (long) reply is playing, an interruption. The internal Whisper
transcribes the question, the emulated LLM's reply is spoken by espeak-ng and played by the
client module's output node (its `stats`), the turn's latency waterfall is shown with each
segment's billing source, and the interruption stops playback (barge-in): the module sends
`conversation.item.truncate` (the page's event log) and the server confirms it with
`conversation.item.truncated`.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from routing.speech import BuiltIn
from tests.emulators.openai import OpenAIEmulator, Scenario
from tests.server.web.conftest import Live
from tests.server.web.voice_browser import fake_mic_chromium, voice_patchbay, write_wav
from tests.voice.speech import silence, speak
from tests.voice.wer import word_error_rate

pytestmark = pytest.mark.slow
AGENT = "support"
QUESTION = "Please schedule a meeting with the design team for tomorrow morning."
INTERRUPTION = "Wait, stop."
# Long enough (about 35 seconds of speech) to still be playing when an interruption comes.
REPLY = (
    "Done. The meeting with the design team is booked for nine tomorrow morning in the large room. "
    "I have sent the invitation to everyone on the team, with the agenda you shared last week. "
    "The room has a screen and a whiteboard, and coffee will be ready at a quarter to nine. "
    "If anyone cannot come, I will let you know at once and suggest another time that suits everyone. "
    "I have also booked the small room next door for the hour after, in case you need to go on. "
    "The notes from the last meeting are attached to the invitation, with the open questions marked. "
    "Is there anything else you would like me to add before the invitations go out?"
)
CHAT_REPLY = "Hello from the playground."
GAPS_MS = (8_000, 20_000)
"""Silences before each interruption. The reply's first audio comes after the endpointing
silence, Whisper, the LLM and espeak-ng's first sentence: about 3 s on an idle machine, when the
first interruption cuts it. On a loaded one Whisper alone can take 15 s: the first interruption
then comes before the reply and is a turn of its own, and the second cuts whichever reply is
playing by then. The test ends at the first barge-in, so it waits only as long as it must."""
TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def conversation_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("audio") / "conversation.wav"
    interruption = speak(INTERRUPTION)
    parts = [silence(600), speak(QUESTION)]
    for gap in GAPS_MS:
        parts += [silence(gap), interruption]
    return write_wav(path, *parts, silence(6_000))


@pytest.fixture
async def patchbay(
    tmp_path: Path, internal_engines: BuiltIn, emulator: tuple[OpenAIEmulator, str]
) -> AsyncIterator[Live]:
    async with voice_patchbay(tmp_path, internal_engines, emulator[1], agent=AGENT) as (live, _, _):
        yield live


async def test_the_playground_chats_and_talks_with_barge_in(
    conversation_wav: Path, patchbay: Live, emulator: tuple[OpenAIEmulator, str]
) -> None:
    live = patchbay
    async with httpx.AsyncClient(base_url=live.url) as http:
        playground = await http.get("/ui/playground")
        admin = await http.get("/ui/")
    # The one page allowed the microphone; the same CSP as the admin pages.
    assert playground.status_code == 200 and "Playground" in playground.text
    assert "microphone=(self)" in playground.headers["permissions-policy"]
    assert "microphone=()" in admin.headers["permissions-policy"]
    assert playground.headers["content-security-policy"] == admin.headers["content-security-policy"]
    emulator[0].enqueue(Scenario(text=CHAT_REPLY))
    emulator[0].always(Scenario(text=REPLY))
    try:
        await converse(conversation_wav, live)
    finally:
        emulator[0].reset()


async def diagnosis(page: Any) -> str:
    """What the page saw, for a failure's message."""
    events = await page.eval_on_selector_all("#pg-events li", "items => items.map(i => i.textContent)")
    log = await page.text_content("#pg-voice-log")
    return (
        f"events: {events}; conversation: {log!r}; waterfalls: {await page.text_content('#pg-waterfalls')!r}"
    )


async def converse(conversation_wav: Path, live: Live) -> None:
    async with fake_mic_chromium(conversation_wav) as browser:
        context = await browser.new_context(locale="en-US")
        context.set_default_timeout(TIMEOUT_MS)
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
        # Signed out, the page says where to sign in.
        await page.goto(f"{live.url}/ui/playground")
        await page.locator("#pg-state", has_text="You are not signed in").wait_for()
        await page.goto(f"{live.url}/ui/#token={live.token}")
        await page.click("nav >> text=Playground")
        await page.wait_for_url("**/ui/playground")
        await page.locator("#pg-agent option", has_text=AGENT).wait_for(state="attached")
        assert await page.input_value("#pg-agent") == AGENT

        # Chat: a refusal says why and keeps the message; then a streamed reply, who served
        # it, what it cost, how it was routed.
        await page.fill("#panel-chat input[type=text]", "nosuch/model")
        await page.fill("#panel-chat textarea", "Say hello.")
        await page.click("#panel-chat button[type=submit]")
        refused = page.locator("#pg-chat-log .error")
        await refused.wait_for()
        assert "No reply:" in (await refused.text_content() or "")
        assert await page.input_value("#panel-chat textarea") == "Say hello."
        await page.fill("#panel-chat input[type=text]", "")
        await page.fill("#panel-chat textarea", "Say hello.")
        await page.click("#panel-chat button[type=submit]")
        facts = page.locator("#pg-chat-log .reply-facts")
        await facts.wait_for()
        assert await page.locator("#pg-chat-log .assistant .reply-text").last.text_content() == CHAT_REPLY
        shown = await facts.text_content() or ""
        assert "openai:main" in shown and "byok" in shown and "$" in shown, shown
        assert "first token" in shown and "in," in shown, shown
        assert await page.locator("#pg-chat-log table.attempts tr[data-result=served]").count() == 1

        # Voice: the question is heard, the reply plays, the waterfall shows, the interruption cuts it.
        await page.click("#tab-voice")
        await page.click("#pg-voice-start")
        user = page.locator("#pg-voice-log p.user").first
        await user.wait_for()
        heard = (await user.text_content() or "").removeprefix("You: ")
        assert word_error_rate([QUESTION], [heard]) < 0.25, heard
        truncate = page.locator('#pg-events li[data-type="conversation.item.truncate"]')
        try:
            await truncate.wait_for(state="attached", timeout=sum(GAPS_MS) + TIMEOUT_MS)
        except Exception as exc:
            raise AssertionError(f"no barge-in: {await diagnosis(page)}") from exc
        truncated = page.locator('#pg-events li[data-type="conversation.item.truncated"]')
        await truncated.wait_for(state="attached")
        await page.locator("#pg-waterfalls figure.waterfall").first.wait_for()

        sent = re.search(r"audio_end_ms=(\d+)", await truncate.text_content() or "")
        confirmed = re.search(r"audio_end_ms=(\d+)", await truncated.text_content() or "")
        assert sent and confirmed and sent.group(1) == confirmed.group(1)
        audio_end_ms = int(sent.group(1))
        # Reply audio reached the output node, and playback stopped with some of it unplayed (the
        # module reports an interruption only when its player dropped pending audio).
        stats = await page.evaluate("window.playgroundVoice.stats")
        assert stats["framesSent"] > 25 and stats["framesPlayed"] > 100, stats
        assert stats["msPlayed"] > 1_000 and stats["msPlayed"] >= audio_end_ms >= 0, (stats, audio_end_ms)
        assert await page.locator("#pg-voice-log p.assistant .interrupted").count() == 1
        # The module keeps what was heard of the cut reply (asked for again after the truncation),
        # which a reconnection would replay, not the whole reply.
        exact = "[...window.playgroundVoice.conversation.items.values()].filter((i) => i.exact).map((i) => i.text)"
        await page.wait_for_function(f"() => {exact}.length > 0")
        kept = await page.evaluate(exact)
        assert len(kept) == 1 and kept[0] and REPLY.startswith(kept[0]) and kept[0] != REPLY, kept

        rows = page.locator("#pg-waterfalls figure.waterfall").last.locator("tbody tr")
        assert await rows.count() == 4
        stt = await rows.nth(0).text_content() or ""
        llm = await rows.nth(1).text_content() or ""
        assert "ms" in stt and "platform" in stt and "$" in stt, stt
        assert "byok" in llm, llm
        assert await page.text_content("#pg-voice-error") == ""
        assert errors == []
        await context.close()
