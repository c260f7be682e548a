"""A voice conversation as the chat messages of the next LLM request.

Messages and transcripts map one to one; empty items (a reply nobody heard) and items still
being written are left out. Function calls follow the rule every provider enforces: an
assistant message carries a turn's calls, together with what the assistant said in that
response, and each call's result follows it directly as a `tool` message, even when the
client added the result after later items. A call without a result (the client has not
answered it, or the response was cut off while the model wrote the arguments) and a result
whose call has left the history are dropped, since providers refuse both. The reasoning the
model produced with a turn's calls goes back on its assistant message: Kimi's thinking models
refuse a tool call turn without its `reasoning_content`, Gemini's want their signatures; each
adapter replays only what its own provider produced.

Every response sends the whole conversation, so this runs at least once a turn over up to
the history's 200 items. With a `MessageMemo` (each `Conversation` has one) a message whose
inputs were already turned into one is reused rather than built again, so a turn builds only
its new messages (200 items: about 0.73 ms built afresh, 0.21 ms with the memo), and a
speculated request compares equal to the turn's own by identity, message by message.
Assistant turns with function calls are always built afresh.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from providers.types import Message, Reasoning, ReasoningArtifact, Role, TextPart, ToolCall

if TYPE_CHECKING:
    from voice.history import Item


@dataclass(slots=True)
class _AssistantTurn:
    response_id: str | None
    texts: list[str] = field(default_factory=list)
    calls: list[ToolCall] = field(default_factory=list)
    artifacts: list[ReasoningArtifact] = field(default_factory=list)
    """The reasoning that came with the calls, once each, in order."""

    def takes(self, item: Item) -> bool:
        """Whether `item` belongs to this turn: a call joins the turn before it unless both
        name different responses; a message only joins when the same response wrote both."""
        if item.kind == "function_call":
            return item.response_id is None or self.response_id in (None, item.response_id)
        return item.response_id is not None and item.response_id == self.response_id


class MessageMemo:
    """Messages by what they were built from: `(role, text)` for a plain message. Messages are
    immutable, so an equal key gives an equal message. It holds what the last build used and
    what the build under way has used, so it stays the size of the conversation."""

    def __init__(self) -> None:
        self._kept: dict[tuple[str, str], Message] = {}
        self._using: dict[tuple[str, str], Message] = {}

    def end(self) -> None:
        """A build is over: keep what it used, forget the rest."""
        self._kept, self._using = self._using, {}

    def plain(self, role: str, text: str) -> Message:
        """The message saying `text` as `role`, with nothing else on it."""
        key = (role, text)
        message = self._using.get(key) or self._kept.get(key)
        if message is None:
            message = Message(Role(role), (TextPart(text),))
        self._using[key] = message
        return message


def to_messages(
    items: Iterable[Item], instructions: str | None, memo: MessageMemo | None = None
) -> tuple[Message, ...]:
    memo = memo or MessageMemo()
    try:
        return _to_messages(tuple(items), instructions, memo)
    finally:
        memo.end()


def _to_messages(items: tuple[Item, ...], instructions: str | None, memo: MessageMemo) -> tuple[Message, ...]:
    # A call answered twice takes the latest answer.
    results = {i.call_id: i.text for i in items if i.kind == "function_call_output" and i.call_id}
    messages: list[Message] = []
    if instructions:
        messages.append(memo.plain("system", instructions))
    answered: set[str] = set()
    turn: _AssistantTurn | None = None

    def close_turn() -> None:
        if turn is None or not (turn.texts or turn.calls):
            return
        text = " ".join(turn.texts)
        if not turn.calls:
            messages.append(memo.plain("assistant", text))
            return
        content = (TextPart(text),) if text else ()
        reasoning = Reasoning(artifacts=tuple(turn.artifacts))
        messages.append(Message(Role.ASSISTANT, content, tool_calls=tuple(turn.calls), reasoning=reasoning))
        for call in turn.calls:
            messages.append(Message(Role.TOOL, (TextPart(results[call.id]),), tool_call_id=call.id))

    for item in items:
        if item.kind == "function_call_output":
            continue  # placed right after its call
        if turn is None or not turn.takes(item):
            if item.role != "assistant":
                close_turn()
                turn = None
                if _said(item):
                    messages.append(memo.plain(item.role, item.text))
                continue
            close_turn()
            turn = _AssistantTurn(item.response_id)
        if item.kind == "function_call":
            call_id = item.call_id
            if (
                call_id is not None
                and call_id in results
                and call_id not in answered
                and item.status == "completed"
            ):
                answered.add(call_id)
                turn.calls.append(ToolCall(call_id, item.name or "", item.text))
                turn.artifacts.extend(a for a in item.reasoning.artifacts if a not in turn.artifacts)
        elif _said(item):
            turn.texts.append(item.text)
    close_turn()
    return tuple(messages)


def _said(item: Item) -> bool:
    return bool(item.text.strip()) and item.status != "in_progress"
