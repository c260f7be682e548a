"""The real billing preflight: holds on the credits ledger for segments that may be charged.

`LedgerPreflight.hold` works out the most a segment may be charged from what the request path
passes in `PreflightRequest.offers`: for each candidate that may serve it, its connection's
billing source and its model's list price (`billing.prices.hold_amount`), through the org's tier
(`billing.policy.max_charge`; an unknown tier is `free`, money fails closed); the largest wins.
A TTS segment's voice fee is held for its text at `SPOKEN_CHARS_PER_SECOND` (its audio is not
known yet). 0 (a BYOK or private plan on a tier without a per-request charge) takes no hold and
touches no database; anything more is a draw on the process's credit lease, in memory, when it
has one (`billing.lease.LeaseBook`, settled through its journal), or else one `Ledger.hold`
(one transaction), refused with `InsufficientCreditsError` (the 402) when the balance cannot
cover it. With `PreflightRequest.enforce` False (the org's `billing_enforcement` flag is off,
docs/flags.md) no credits are reserved and nothing is refused for them: the segment settles as a
`Ledger.charge` (at most what is available, the rest recorded as a shortfall), so it is still
metered.

The hold it returns settles with the source and model that actually served the segment:
`billing.prices.cost` at that model's list price, then `billing.policy.charge` for that source,
written as one `Ledger.settle` (a `Ledger.charge` when no hold was taken and something is owed;
nothing at all when the charge is 0 and there is no hold). `release` gives the hold back. Each
hold, settle and charge carries an idempotency key made of the request id, the segment and a
random attempt id, so a replay never writes twice; the hold and the charge pass the request id, so
the ledger refuses one imported from the predecessor (`RequestAlreadyChargedError`, in the same
lookup). A settle or release, once begun, runs to its end even when the caller is cancelled
meanwhile (a stream whose client left): see `_to_the_end`. See
docs/billing.md#how-a-request-is-charged and #legacy-billing-rows.

With `caps` (`billing.spend_caps.SpendCaps`), a segment that may be charged is first counted
against the org's monthly budget and its API key's spend limit, in memory, and refused with
`BudgetExceededError` / `SpendLimitExceededError` (402s) before the ledger is asked for anything;
its settled charge is counted when it closes. A segment that cannot be charged skips the caps too.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Mapping
from typing import TypeVar

from billing.lease import Draw, LeaseBook
from billing.ledger import Ledger
from billing.ledger_types import REQUEST_KEY_PREFIX, HoldClosedError, RequestAlreadyChargedError
from billing.policy import allowed_sources, charge, max_charge
from billing.preflight import NO_HOLD, Hold, PreflightRequest
from billing.prices import Price, cost, hold_amount
from billing.spend_caps import Reservation, SpendCaps
from billing.tiers import TierPolicy, policy_for
from billing.usage import Segment
from foundation.db import new_id
from providers.contract import BillingSource
from providers.types import Usage

log = logging.getLogger("patchbay.billing")
T = TypeVar("T")


class LedgerPreflight:
    """Holds on `ledger` for segments that may be charged; nothing for those that cannot be."""

    def __init__(
        self, ledger: Ledger, caps: SpendCaps | None = None, leases: LeaseBook | None = None
    ) -> None:
        self._ledger = ledger
        self._caps = caps
        self._leases = leases

    async def hold(self, request: PreflightRequest) -> Hold:
        amount = hold_for(request)
        if amount is None:
            return NO_HOLD
        policy, segment = policy_for(request.tier), Segment(request.segment)
        key = f"{REQUEST_KEY_PREFIX}{(request.request_id or '-')[:64]}:{request.segment}:{new_id('at')}"
        reserved = None
        if self._caps is not None:
            reserved = await self._caps.reserve(request.org_id, request.api_key_id, amount)
        hold_id, held, draw = None, 0, None
        try:
            if amount > 0 and request.enforce and self._leases is not None:
                draw = await self._leases.reserve(request.org_id, amount, request.request_id)
            if amount > 0 and request.enforce and draw is None:
                details = {"segment": request.segment, "intent": request.intent}
                hold = await self._ledger.hold(
                    request.org_id, amount, key, details=details, request_id=request.request_id
                )
                hold_id, held = hold.id, hold.amount
        except BaseException:
            if self._caps is not None and reserved is not None:
                self._caps.close(reserved, 0)  # refused or cancelled: nothing was reserved after all
            raise
        return LedgerHold(
            self._ledger,
            request.org_id,
            policy,
            segment,
            key,
            hold_id,
            api_key_id=request.api_key_id,
            request_id=request.request_id,
            caps=self._caps,
            reserved=reserved,
            held=held,
            lease=(self._leases, draw) if self._leases is not None and draw is not None else None,
        )


def hold_for(request: PreflightRequest) -> int | None:
    """micro-USD to reserve for `request`: the largest charge any candidate may cost, each at its
    own source and price; None when no candidate's source can be charged anything (no hold, no
    ledger). Pure: no database."""
    policy = policy_for(request.tier)
    segment = Segment(request.segment)
    offers = request.offers
    if offers is None:
        offers = tuple((source, None) for source in allowed_sources(policy))
    chargeable = [
        (source, price)
        for source, price in offers
        if max_charge(policy, segment, _PROBE, audio_seconds=60.0, sources=(source,)) > 0
    ]
    if not chargeable:
        return None
    seconds = request.audio_seconds
    if seconds is None:  # a TTS segment: its voice fee is held for the time its text takes to say
        seconds = request.characters / SPOKEN_CHARS_PER_SECOND
    return max(
        max_charge(policy, segment, _list_max(request, price), audio_seconds=seconds, sources=(source,))
        for source, price in chargeable
    )


def _list_max(request: PreflightRequest, price: Price | None) -> int:
    return hold_amount(
        price,
        request.intent,
        max_output_tokens=request.max_output_tokens,
        input_tokens_estimate=request.input_tokens_estimate,
        audio_seconds=request.audio_seconds,
        characters=request.characters,
    )


SPOKEN_CHARS_PER_SECOND = 10
"""A slow speaking rate (speech engines say 12 to 16 characters a second): a TTS segment's
audio, not known before it runs, is estimated from its text for the voice fee's hold. The
settle charges the audio it actually produced."""

_PROBE = 1_000_000
"""A list cost of 1 USD: a source charged nothing for it is charged nothing for any cost."""


class LedgerHold:
    """One segment's reservation (`hold_id`; None when nothing was reserved), closed once."""

    def __init__(
        self,
        ledger: Ledger,
        org_id: str,
        policy: TierPolicy,
        segment: Segment,
        key: str,
        hold_id: str | None,
        *,
        api_key_id: str | None = None,
        request_id: str | None = None,
        caps: SpendCaps | None = None,
        reserved: Reservation | None = None,
        held: int = 0,
        lease: tuple[LeaseBook, Draw] | None = None,
    ) -> None:
        self._lease = lease
        self._ledger = ledger
        self._held = held
        self._org_id = org_id
        self._policy = policy
        self._segment = segment
        self._key = key
        self.hold_id = hold_id
        self._request_id = request_id
        self._caps = caps
        self._reserved = reserved
        self._api_key_id = api_key_id

    def _close(self, charged: int) -> None:
        """Stop counting the hold against the caps (once), and count what was charged."""
        if self._caps is not None and self._reserved is not None:
            self._caps.close(self._reserved, charged)
            self._reserved = None

    async def settle(
        self,
        billing_source: BillingSource,
        usage: Usage,
        *,
        price: Price | None = None,
        audio_seconds: float = 0.0,
        characters: int = 0,
    ) -> int:
        list_cost = (
            cost(price, tokens=usage, audio_seconds=audio_seconds, characters=characters) if price else 0
        )
        owed = charge(self._policy, billing_source, self._segment, list_cost, audio_seconds=audio_seconds)
        details = {"source": billing_source.value, "reason": owed.reason, "list_cost": list_cost}
        charged = 0
        try:
            write = self._write(owed.credits, details)
            # A settle from a lease is a journal write that never suspends: nothing to shield.
            leased = self._lease is not None and self._lease[0].journaling
            charged = await (write if leased else _to_the_end(write))
        finally:
            self._close(charged)
        return charged

    async def _write(self, credits: int, details: Mapping[str, object]) -> int:
        spender = self._api_key_id
        if self._lease is not None:
            book, draw = self._lease
            key = f"{self._key}:settle"
            return await book.settle(
                draw, credits, key, details, api_key_id=spender, request_id=self._request_id
            )
        if self.hold_id is not None:
            try:
                entry = await self._ledger.settle(
                    self.hold_id,
                    credits,
                    f"{self._key}:settle",
                    org_id=self._org_id,
                    details=details,
                    api_key_id=spender,
                    held=self._held,
                )
                return entry.amount
            except HoldClosedError:
                pass  # The sweeper released it (the segment outlived the hold's TTL): pay without a hold.
        elif credits == 0:
            return 0
        try:
            entry = await self._ledger.charge(
                self._org_id,
                credits,
                f"{self._key}:charge",
                details=details,
                api_key_id=spender,
                request_id=self._request_id,
            )
        except RequestAlreadyChargedError:
            # Imported from the predecessor after this segment's hold expired (or, with no hold,
            # at any time): that import charged the request id, so this path does not.
            log.warning("request id already charged by the legacy import; segment not charged")
            return 0
        return entry.amount

    async def release(self) -> None:
        self._close(0)
        if self._lease is not None:
            self._lease[0].release(self._lease[1])
        if self.hold_id is not None:
            await _to_the_end(self._release(self.hold_id))

    async def _release(self, hold_id: str) -> None:
        try:
            await self._ledger.release(hold_id, f"{self._key}:release", org_id=self._org_id)
        except HoldClosedError:
            log.info("hold %s was already closed", hold_id)


async def _to_the_end(work: Awaitable[T]) -> T:
    """Await `work` to its end even if the caller is cancelled meanwhile; the cancellation then
    goes on at the caller's next await.

    A stream's task is cancelled when its client leaves. Landing in the middle of a settle, it
    would roll the settle back and leave the hold to expire: a segment served and never paid.
    So the write runs in a task of its own, shielded, and the caller waits for it (a ledger
    write is bounded by the database's lock and pool timeouts) and returns what it wrote."""
    task = asyncio.ensure_future(work)
    cancelled = False
    try:
        while True:
            try:
                return await asyncio.shield(task)
            except asyncio.CancelledError:
                if task.cancelled():
                    raise
                cancelled = True
                if task.done():
                    return task.result()
    finally:
        current = asyncio.current_task()
        if cancelled and current is not None:
            # The same cancellation, again: its count stays as it was, for asyncio.timeout and
            # task groups that tell their own cancellation from others by it.
            current.uncancel()
            current.cancel()
