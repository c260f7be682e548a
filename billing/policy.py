"""The billing-source policy: which sources a tier may route to, and what each segment is charged.

Pure functions of a tier's row (`billing.tiers.TierPolicy`), a segment's billing source and
kind, and its list cost (`billing.prices.cost` of the model's price). The rules, as
docs/billing.md#what-a-segment-is-charged states them:

- a `platform` segment is charged its list cost plus the tier's markup;
- a `byok` or `private` segment is charged nothing, unless the tier's BYOK model is a
  surcharge: then that share of its notional price (the list cost it would have had);
- a platform `stt` or `tts` segment also pays the tier's voice fee per minute of its audio.

Each segment is charged by its own source, so the platform's speech inside a BYOK voice turn
stays billable while the BYOK LLM segment costs nothing. Every step rounds up to a whole
micro-USD, like prices do.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction

from billing.prices import SECONDS_PER_MINUTE, Price, cost
from billing.tiers import BASIS_POINTS, ByokModel, TierPolicy, policy_for
from billing.usage import Segment
from providers.contract import BillingSource

SPEECH_SEGMENTS = frozenset({Segment.STT, Segment.TTS})

SKIP_REASONS = {source: f"skipped:tier:{source.value}" for source in BillingSource}
"""The resolver's trace reason for a candidate the tier does not allow (docs/routing.md)."""


def allowed(policy: TierPolicy, source: BillingSource) -> str | None:
    """None when the tier may route to `source`; else the skip reason (`skipped:tier:byok`,
    `skipped:tier:private`, `skipped:tier:platform`)."""
    permitted = {
        BillingSource.PLATFORM: policy.platform_allowed,
        BillingSource.BYOK: policy.byok_allowed,
        BillingSource.PRIVATE: policy.private_allowed,
    }[source]
    return None if permitted else SKIP_REASONS[source]


def allowed_sources(policy: TierPolicy) -> frozenset[BillingSource]:
    return frozenset(source for source in BillingSource if allowed(policy, source) is None)


def billing_policy(tier: str, *, byok_override: bool = False) -> frozenset[BillingSource]:
    """Tier name -> the sources it permits, from the packaged table: `routing.snapshot.BillingPolicy`.
    `byok_override`: the org keeps BYOK whatever its tier (`OrgAISettings.byok_enabled`, migrated)."""
    policy = policy_for(tier)
    return allowed_sources(policy.with_byok_override() if byok_override else policy)


@dataclass(frozen=True, slots=True)
class Charge:
    """What one segment is charged, in micro-USD, and why."""

    credits: int
    """The total to settle: `usage + voice_fee`."""
    usage: int
    """For the model's work: list cost + markup (platform), or the BYOK surcharge, or 0."""
    voice_fee: int
    reason: str
    """`platform`, `byok:included`, `byok:surcharge`, `private:included` or `private:surcharge`."""


def charge(
    policy: TierPolicy, source: BillingSource, segment: Segment, list_cost: int, *, audio_seconds: float = 0.0
) -> Charge:
    """The charge for one segment: `list_cost` is its cost at list price (`billing.prices.cost`),
    `audio_seconds` its audio (the voice fee's minutes, for platform stt and tts segments).

    Whether the tier allows `source` is the resolver's business (`allowed`): a segment that ran
    anyway (an org with a BYOK override) is charged by the same rules."""
    if list_cost < 0:
        raise ValueError("a list cost is never negative")
    if source is BillingSource.PLATFORM:
        usage = _share(list_cost, BASIS_POINTS + policy.markup_bp)
        fee = voice_fee(policy, audio_seconds) if segment in SPEECH_SEGMENTS else 0
        return Charge(credits=usage + fee, usage=usage, voice_fee=fee, reason=source.value)
    if policy.byok_model is ByokModel.SURCHARGE:
        usage = _share(list_cost, policy.byok_surcharge_bp)
        return Charge(credits=usage, usage=usage, voice_fee=0, reason=f"{source.value}:surcharge")
    return Charge(credits=0, usage=0, voice_fee=0, reason=f"{source.value}:included")


def charge_before_audio(
    policy: TierPolicy, source: BillingSource, price: Price | None, *, characters: int
) -> int | None:
    """A TTS segment's charge when it does not depend on the audio it will make: its model is
    priced by characters (or not at all) and no voice fee applies to its source. None when the
    audio counts (a per-minute price, or a platform segment on a tier with a voice fee)."""
    if price is not None and price.per_minute:
        return None
    if source is BillingSource.PLATFORM and policy.voice_fee:
        return None
    list_cost = cost(price, characters=characters) if price is not None else 0
    return charge(policy, source, Segment.TTS, list_cost).credits


def voice_fee(policy: TierPolicy, audio_seconds: float) -> int:
    """The tier's voice fee for `audio_seconds` of platform voice, rounded up; 0 when it has none."""
    if not policy.voice_fee or not math.isfinite(audio_seconds) or audio_seconds <= 0:
        return 0
    return math.ceil(Fraction(repr(float(audio_seconds))) * policy.voice_fee / SECONDS_PER_MINUTE)


def max_charge(
    policy: TierPolicy,
    segment: Segment,
    max_list_cost: int,
    *,
    audio_seconds: float = 0.0,
    sources: Iterable[BillingSource] | None = None,
) -> int:
    """The most a segment may be charged before it is known which source will serve it: the
    largest `charge` over `sources` (default: those the tier allows), for its hold. 0 means the
    segment needs no hold (a BYOK-only plan on a tier without a per-request charge)."""
    candidates = allowed_sources(policy) if sources is None else frozenset(sources)
    return max(
        (charge(policy, s, segment, max_list_cost, audio_seconds=audio_seconds).credits for s in candidates),
        default=0,
    )


def _share(amount: int, bp: int) -> int:
    """`amount` x `bp` / 10,000, rounded up."""
    return -(-amount * bp // BASIS_POINTS)
