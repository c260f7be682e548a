"""The client's edits of a session's conversation (`conversation.item.*`): items added, deleted
and truncated, each announced in the outbox; a bad reference is a `ClientError`."""

from __future__ import annotations

from collections.abc import Callable

from voice.errors import ClientError
from voice.events import ItemCreated, ItemDeleted, ItemTruncated
from voice.history import Conversation, HistoryError, Item, MessageRole
from voice.outbox import Outbox


class ItemEdits:
    def __init__(self, conversation: Conversation, outbox: Outbox, ids: Callable[[str], str]) -> None:
        self._conversation, self._outbox, self._ids = conversation, outbox, ids

    def add_text(
        self, role: MessageRole, text: str, *, previous_item_id: str | None = None, item_id: str | None = None
    ) -> Item:
        return self._add(Item(item_id or self._ids("item"), role, "text", text=text), previous_item_id)

    def add_function_call(
        self,
        name: str,
        arguments: str,
        *,
        call_id: str | None = None,
        previous_item_id: str | None = None,
        item_id: str | None = None,
    ) -> Item:
        """A call the model made earlier (a client restoring its history)."""
        if call_id is not None and self._conversation.find_call(call_id) is not None:
            raise ClientError(
                "invalid_value",
                f"a function call with call_id {call_id!r} already exists",
                param="item.call_id",
            )
        item = Item(
            item_id or self._ids("item"),
            "assistant",
            "function_call",
            text=arguments,
            call_id=call_id or self._ids("call"),
            name=name,
        )
        return self._add(item, previous_item_id)

    def add_function_output(
        self, call_id: str, output: str, *, previous_item_id: str | None = None, item_id: str | None = None
    ) -> Item:
        """The client's result of a function call; the next response's request carries it."""
        if self._conversation.find_call(call_id) is None:
            raise ClientError(
                "invalid_tool_call_id",
                f"tool call id {call_id!r} not found in the conversation",
                param="item.call_id",
            )
        item = Item(
            item_id or self._ids("item"), "tool", "function_call_output", text=output, call_id=call_id
        )
        return self._add(item, previous_item_id)

    def _add(self, item: Item, previous_item_id: str | None) -> Item:
        try:
            previous = self._conversation.add(item, previous_item_id)
        except HistoryError as exc:
            raise ClientError(
                "item_not_found" if previous_item_id else "invalid_item", str(exc), param="previous_item_id"
            ) from None
        self._outbox.put(ItemCreated(item, previous))
        return item

    def delete_item(self, item_id: str) -> None:
        try:
            self._conversation.delete(item_id)
        except HistoryError as exc:
            raise ClientError("item_not_found", str(exc), param="item_id") from None
        self._outbox.put(ItemDeleted(item_id))

    def truncate(self, item_id: str, content_index: int, audio_end_ms: int) -> None:
        """The client played `audio_end_ms` of an assistant item: forget the unheard rest."""
        if audio_end_ms < 0:
            raise ClientError("invalid_value", "audio_end_ms must not be negative", param="audio_end_ms")
        try:
            self._conversation.truncate(item_id, audio_end_ms)
        except HistoryError as exc:
            raise ClientError("invalid_truncate", str(exc), param="item_id") from None
        self._outbox.put(ItemTruncated(item_id, content_index, audio_end_ms))
