"""What each segment of a voice session's turns was charged, as the segments settle.

`routing.router.Router.account` reports every segment it settles to the call's
`CallContext.costs`, when the call has one, under the call's turn id; the voice session takes a
turn's charges when its response ends and puts them in `response.done`
(`response.metadata.cost`, docs/voice.md). In memory, O(1) per segment, no database: the
charges themselves are in the ledger and on the usage records. Only the latest `max_turns`
turns are kept, so a turn nobody takes (a cancelled response's) is forgotten.
"""

from __future__ import annotations

from collections import OrderedDict

from billing.money import format_usd


class TurnCosts:
    """One session's charges per turn and segment kind (`stt`, `llm`, `tts`), in micro-USD."""

    def __init__(self, *, max_turns: int = 32) -> None:
        self._turns: OrderedDict[str | None, dict[str, int]] = OrderedDict()
        self._max_turns = max_turns

    def add(self, turn_id: str | None, segment: str, micro_usd: int) -> None:
        """A segment of `turn_id` settled at `micro_usd` (0 included: it ran and cost nothing)."""
        by_segment = self._turns.get(turn_id)
        if by_segment is None:
            by_segment = self._turns[turn_id] = {}
            while len(self._turns) > self._max_turns:
                self._turns.popitem(last=False)
        by_segment[segment] = by_segment.get(segment, 0) + micro_usd

    def take(self, turn_id: str | None) -> dict[str, int] | None:
        """The turn's charges by segment kind, forgotten once taken; None when none settled."""
        return self._turns.pop(turn_id, None)


def cost_metadata(by_segment: dict[str, int]) -> dict[str, object]:
    """A turn's charges as `response.metadata` carries them: the total and each segment kind, in
    USD as exact decimal strings (the `x-patchbay-cost` format)."""
    return {
        "cost": format_usd(sum(by_segment.values())),
        "cost_by_segment": {segment: format_usd(amount) for segment, amount in sorted(by_segment.items())},
    }
