"""What each segment of a voice session's turns was charged, as the segments settle.

`routing.router.Router.account` reports every segment it settles to the call's
`CallContext.costs`, when the call has one, under the call's turn id, with the billing source
of the connection or engine that served it; the voice session takes a turn's charges when its
response ends and puts them in `response.done` (`response.metadata.cost`, `cost_by_segment`,
`billing_source_by_segment`; docs/voice.md). In memory, O(1) per segment, no database: the
charges themselves are in the ledger and on the usage records. Only the latest `max_turns`
turns are kept, so a turn nobody takes (a cancelled response's) is forgotten.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field

from billing.money import format_usd


@dataclass(slots=True)
class _Turn:
    amounts: dict[str, int] = field(default_factory=dict)
    sources: dict[str, set[str]] = field(default_factory=dict)


class TurnCosts:
    """One session's charges per turn and segment kind (`stt`, `llm`, `tts`), in micro-USD."""

    def __init__(self, *, max_turns: int = 32) -> None:
        self._turns: OrderedDict[str | None, _Turn] = OrderedDict()
        self._max_turns = max_turns

    def add(self, turn_id: str | None, segment: str, micro_usd: int, *, source: str | None = None) -> None:
        """A segment of `turn_id` settled at `micro_usd` (0 included: it ran and cost nothing),
        billed to `source` (`platform`, `byok`, `private`) when known."""
        turn = self._turns.get(turn_id)
        if turn is None:
            turn = self._turns[turn_id] = _Turn()
            while len(self._turns) > self._max_turns:
                self._turns.popitem(last=False)
        turn.amounts[segment] = turn.amounts.get(segment, 0) + micro_usd
        if source is not None:
            turn.sources.setdefault(segment, set()).add(source)

    def take(self, turn_id: str | None) -> dict[str, int] | None:
        """The turn's charges by segment kind, forgotten once taken; None when none settled."""
        turn = self._turns.pop(turn_id, None)
        return None if turn is None else turn.amounts

    def metadata(self, turn_id: str | None) -> dict[str, object]:
        """The turn's charges, taken, as `response.metadata` carries them (`cost_metadata`)."""
        turn = self._turns.pop(turn_id, None) or _Turn()
        sources = {segment: "+".join(sorted(names)) for segment, names in turn.sources.items()}
        return cost_metadata(turn.amounts, sources)


def cost_metadata(by_segment: dict[str, int], sources: Mapping[str, str] | None = None) -> dict[str, object]:
    """A turn's charges as `response.metadata` carries them: the total and each segment kind, in
    USD as exact decimal strings (the `x-patchbay-cost` format); with `sources`, who paid for
    each segment kind (`platform`, `byok`, `private`; `byok+platform` when its parts differed)."""
    described: dict[str, object] = {
        "cost": format_usd(sum(by_segment.values())),
        "cost_by_segment": {segment: format_usd(amount) for segment, amount in sorted(by_segment.items())},
    }
    if sources is not None:
        described["billing_source_by_segment"] = dict(sorted(sources.items()))
    return described
