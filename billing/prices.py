"""Prices as data, and the exact cost of a segment's usage in integer micro-USD.

A `Price` holds integers of micro-USD per unit: per **1M tokens** (input, output, cached input,
cache write), per **minute of audio** (STT, and TTS priced by its output audio) and per **1M
characters** (TTS). They come from the catalog (`routing/data/catalog.json`) or from a price a
connection declares for one of its models (`parse_price_spec`, `Price.from_usd`); both are
parsed exactly from USD and refused, not rounded, beyond six decimal places (`billing.money`).

**The rounding rule** (one, for every segment): the cost of a segment is the sum over its
metered quantities of quantity x unit price, computed exactly (rational arithmetic, audio
seconds taken as the decimal the recorded value prints as), then rounded **up** once to a whole
micro-USD. So a segment that used anything priced above zero never costs 0, and the rounding
adds less than one micro-USD per segment. See docs/billing.md#prices.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from decimal import Decimal
from fractions import Fraction
from types import MappingProxyType

from billing.money import MAX_MICRO_USD, format_usd, parse_usd
from foundation.errors import RequestError
from providers.types import (
    ChatRequest,
    ReasoningDelta,
    RefusalDelta,
    StreamEvent,
    TextDelta,
    TextPart,
    ToolCallDelta,
    ToolCallStart,
    Usage,
)

TOKENS_PER_UNIT = 1_000_000
"""Token prices are per million tokens."""
CHARACTERS_PER_UNIT = 1_000_000
"""Character prices are per million characters."""
SECONDS_PER_MINUTE = 60

PRICE_FIELDS = ("input", "output", "cached_input", "cache_write", "per_minute", "per_1m_chars")


class PriceError(RequestError):
    """A price that is not written the way prices are (`0.15/0.60`, `audio:0.006/min`)."""

    code = "invalid_price"


@dataclass(frozen=True, slots=True)
class Price:
    """A model's price in integer micro-USD per unit; None where the model is not priced by that unit.

    `input`, `output`, `cached_input`, `cache_write`: per 1M tokens. `per_minute`: per minute
    of audio. `per_1m_chars`: per 1M characters. Cached input and cache writes without their own
    price cost the input price.
    """

    input: int | None = None
    output: int | None = None
    cached_input: int | None = None
    cache_write: int | None = None
    per_minute: int | None = None
    per_1m_chars: int | None = None

    def __post_init__(self) -> None:
        for name, value in self.items().items():
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_MICRO_USD:
                raise ValueError(f"price {name} must be an integer of micro-USD from 0 to {MAX_MICRO_USD}")

    @classmethod
    def from_usd(cls, values: Mapping[str, str | Decimal | int | None], *, param: str = "price") -> Price:
        """`{"input": "0.15", "output": "0.60"}` (USD per unit) -> a Price, exactly. Refuses unknown
        fields, an empty price, negatives, floats and more than six decimal places (`param` names them)."""
        unknown = sorted(set(values) - set(PRICE_FIELDS))
        if unknown:
            raise PriceError(
                f"{param} has unknown fields {', '.join(unknown)}; use {', '.join(PRICE_FIELDS)}", param=param
            )
        micro = {
            name: parse_usd(value, param=f"{param}.{name}")
            for name, value in values.items()
            if value is not None
        }
        if not micro:
            raise PriceError(f"{param} is empty: give at least one of {', '.join(PRICE_FIELDS)}", param=param)
        return cls(**micro)

    def items(self) -> dict[str, int]:
        """The fields that are set, in micro-USD per unit."""
        return {f.name: v for f in fields(self) if (v := getattr(self, f.name)) is not None}

    def usd(self) -> dict[str, str]:
        """The fields that are set as exact USD strings (`"0.15"`): how prices are stored and shown."""
        return {name: format_usd(value) for name, value in self.items().items()}


FREE = Price(input=0, output=0, per_minute=0, per_1m_chars=0)
"""What the built-in engines cost: nothing (they run on the server itself)."""


def cost(
    price: Price, *, tokens: Usage | None = None, audio_seconds: float = 0.0, characters: int = 0
) -> int:
    """The exact cost in micro-USD of one segment's usage, rounded up once (module doc).

    Takes what `Router.account` records: `tokens` (input includes cached reads and cache writes,
    which are priced at their own rates), `audio_seconds` (priced `per_minute`) and
    `characters` (priced `per_1m_chars`). A quantity the price does not cover costs nothing;
    negative counts (a provider's bug) count as zero.
    """
    total = Fraction(
        _token_units(price, tokens) + max(characters, 0) * (price.per_1m_chars or 0), TOKENS_PER_UNIT
    )
    if price.per_minute:
        total += _seconds(audio_seconds) * price.per_minute / SECONDS_PER_MINUTE
    return math.ceil(total)


def max_cost(
    price: Price,
    max_output_tokens: int | None,
    input_tokens_estimate: int,
    *,
    audio_seconds: float | None = 0.0,
    characters: int = 0,
) -> int | None:
    """The most a segment may cost, for its hold: every input token at the dearest input rate
    (plain, cached or cache write), `max_output_tokens` of output, and the speech quantities
    known before it runs (an STT segment's audio, a TTS segment's text).

    None when the cost has no bound: output is priced and `max_output_tokens` is None, or audio
    is priced per minute and `audio_seconds` is None (a TTS segment's output length is unknown).
    Then the hold is the intent's ceiling (`hold_amount`). For any usage within these maxima,
    `cost(...) <= max_cost(...)`.
    """
    if max_output_tokens is None and price.output:
        return None
    if audio_seconds is None and price.per_minute:
        return None
    dearest_input = max(price.input or 0, price.cached_input or 0, price.cache_write or 0)
    units = (
        max(input_tokens_estimate, 0) * dearest_input
        + max(max_output_tokens or 0, 0) * (price.output or 0)
        + max(characters, 0) * (price.per_1m_chars or 0)
    )
    total = Fraction(units, TOKENS_PER_UNIT)
    if price.per_minute and audio_seconds is not None:
        total += _seconds(audio_seconds) * price.per_minute / SECONDS_PER_MINUTE
    return math.ceil(total)


INTENT_CEILINGS: Mapping[str, int] = MappingProxyType(
    {
        "chat": 2_000_000,
        "vision": 2_000_000,
        "structured": 2_000_000,
        "tools": 2_000_000,
        "summarize": 2_000_000,
        "voice_turn": 500_000,
        "stt": 500_000,
        "tts": 500_000,
    }
)
"""micro-USD held for a segment whose maximum is not known (no max tokens, an unpriced model),
per task intent (`routing.intents.Intent` values; a test keeps the two in step)."""
DEFAULT_CEILING = 2_000_000
"""The ceiling of an intent `INTENT_CEILINGS` does not name."""


def ceiling(intent: str) -> int:
    """micro-USD to hold for a segment of `intent` whose maximum cost is not known."""
    return INTENT_CEILINGS.get(intent, DEFAULT_CEILING)


def hold_amount(
    price: Price | None,
    intent: str,
    *,
    max_output_tokens: int | None,
    input_tokens_estimate: int,
    audio_seconds: float | None = 0.0,
    characters: int = 0,
) -> int:
    """The list cost to reserve before a segment runs: `max_cost`, or the intent's ceiling when
    that has no bound or the model has no price."""
    bound = (
        max_cost(
            price,
            max_output_tokens,
            input_tokens_estimate,
            audio_seconds=audio_seconds,
            characters=characters,
        )
        if price is not None
        else None
    )
    return ceiling(intent) if bound is None else bound


_CHARS_PER_TOKEN = 3
"""A conservative estimate: most tokenizers average nearer 4 characters a token in English."""
_TOKENS_PER_MEDIA_PART = 1_000


def estimate_input_tokens(request: ChatRequest) -> int:
    """The input tokens a request may use, estimated for its hold (text length, a flat amount per
    image or audio part); what it actually used is settled from the provider's usage."""
    chars, media = 0, 0
    for message in request.messages:
        for part in message.content:
            if isinstance(part, TextPart):
                chars += len(part.text)
            else:
                media += 1
    return -(-chars // _CHARS_PER_TOKEN) + media * _TOKENS_PER_MEDIA_PART


def estimate_usage(request: ChatRequest, output_chars: int) -> Usage:
    """A stream's usage when its provider never reported any (cancelled, failed, or a server
    that sends no usage): the request's input estimate and the output that arrived, at the same
    3 characters a token. So a stream that served something is never charged zero by accident."""
    output_tokens = -(-max(output_chars, 0) // _CHARS_PER_TOKEN)
    return Usage(input_tokens=estimate_input_tokens(request), output_tokens=output_tokens)


_TEXT_EVENTS = (TextDelta, RefusalDelta, ReasoningDelta)


def output_chars(event: StreamEvent) -> int:
    """The characters of output a stream event brings, for `estimate_usage`."""
    if isinstance(event, _TEXT_EVENTS):
        return len(event.text)
    if isinstance(event, ToolCallDelta):
        return len(event.arguments)
    if isinstance(event, ToolCallStart):
        return len(event.name)
    return 0


_TOKENS_SPEC = re.compile(r"^(?P<input>[^/]+)/(?P<output>[^/]+)(?:/(?P<cached>[^/]+))?$")
_AUDIO_SPEC = re.compile(r"^audio:(?P<usd>[^/]+)/min$", re.I)
_CHARS_SPEC = re.compile(r"^chars:(?P<usd>[^/]+)/1m$", re.I)
SPEC_FORMS = "IN/OUT or IN/OUT/CACHED_IN (USD per 1M tokens), audio:USD/min, chars:USD/1M"


def parse_price_spec(spec: str, *, param: str = "price") -> Price:
    """A price as the CLI takes it, in USD: `0.15/0.60` (per 1M input/output tokens),
    `0.15/0.60/0.075` (and cached input), `audio:0.006/min`, `chars:15/1M`.

    Raises `PriceError` for a spec of none of those forms and `billing.money.AmountError` for a
    value that is not an exact, non-negative USD amount of at most six decimal places."""
    text = spec.strip().replace(" ", "")
    if match := _AUDIO_SPEC.match(text):
        return Price.from_usd({"per_minute": match["usd"]}, param=param)
    if match := _CHARS_SPEC.match(text):
        return Price.from_usd({"per_1m_chars": match["usd"]}, param=param)
    if ":" not in text and (match := _TOKENS_SPEC.match(text)):
        return Price.from_usd(
            {"input": match["input"], "output": match["output"], "cached_input": match["cached"]}, param=param
        )
    raise PriceError(f"{param} {spec!r} is not a price; write {SPEC_FORMS}", param=param)


def _token_units(price: Price, tokens: Usage | None) -> int:
    """Tokens x micro-USD per 1M tokens, summed (so the cost is this / 1M)."""
    if tokens is None:
        return 0
    prompt = max(tokens.input_tokens, 0)
    cached = min(max(tokens.cached_input_tokens, 0), prompt)
    written = min(max(tokens.cache_write_tokens, 0), prompt - cached)
    plain_rate = price.input or 0
    cached_rate = plain_rate if price.cached_input is None else price.cached_input
    write_rate = plain_rate if price.cache_write is None else price.cache_write
    return (
        (prompt - cached - written) * plain_rate
        + cached * cached_rate
        + written * write_rate
        + max(tokens.output_tokens, 0) * (price.output or 0)
    )


def _seconds(seconds: float) -> Fraction:
    """Audio seconds as the decimal they print as (`2.345`), exactly; not positive or not finite: 0."""
    if not math.isfinite(seconds) or seconds <= 0:
        return Fraction(0)
    return Fraction(repr(float(seconds)))
