"""The model catalog: known models per provider with capabilities, limits and platform prices.

The data lives in `routing/data/catalog.json` (format in docs/routing.md#catalog), validated
with pydantic on load and turned into frozen dataclasses; prices become `billing.prices.Price`
(integer micro-USD, refused beyond six decimal places). A connection's own knowledge is
merged on top: models a private endpoint declares win over the catalog (their declared price
too), and models a connection's model list reports but the catalog does not know are offered
as text-only, unpriced.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType

from pydantic import BaseModel, ConfigDict, Field

from billing.prices import FREE, Price
from foundation.errors import RequestError
from providers.contract import Capability, ModelRef, ProviderId
from routing.model import ConnectionView

CATALOG_PATH = Path(__file__).parent / "data" / "catalog.json"
SUPPORTED_VERSIONS = frozenset({1})
UNKNOWN_MODEL_CAPABILITIES: frozenset[Capability] = frozenset({Capability.TEXT})


class _PriceWire(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input: Decimal | None = None
    output: Decimal | None = None
    cached_input: Decimal | None = None
    cache_write: Decimal | None = None
    per_minute: Decimal | None = None
    per_1m_chars: Decimal | None = None


class _ModelWire(BaseModel):
    model_config = ConfigDict(extra="forbid")

    capabilities: list[Capability]
    context_window: int | None = Field(default=None, gt=0)
    max_output: int | None = Field(default=None, gt=0)
    price: _PriceWire | None = None


class _CatalogWire(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int
    updated: str
    currency: str = "USD"
    notes: str = ""
    aliases: dict[str, str] = {}
    providers: dict[ProviderId, dict[str, _ModelWire]]


@dataclass(frozen=True, slots=True)
class ModelInfo:
    provider: ProviderId
    id: str
    capabilities: frozenset[Capability]
    context_window: int | None = None
    max_output: int | None = None
    price: Price | None = None
    """List price (micro-USD per unit; `price_for`), None when unpriced."""
    source: str = "catalog"
    """`catalog`, `declared` (a private endpoint's own declaration) or `reported` (its model list)."""


@dataclass(frozen=True, slots=True)
class Catalog:
    version: int
    updated: str
    currency: str
    models: Mapping[ProviderId, Mapping[str, ModelInfo]]
    aliases: Mapping[str, ModelRef]

    @classmethod
    def from_json(cls, raw: str | bytes) -> Catalog:
        wire = _CatalogWire.model_validate_json(raw)
        if wire.version not in SUPPORTED_VERSIONS:
            raise ValueError(f"catalog version {wire.version} is not supported")
        models: dict[ProviderId, Mapping[str, ModelInfo]] = {}
        for provider, entries in wire.providers.items():
            models[provider] = MappingProxyType(
                {model_id: _info(provider, model_id, entry) for model_id, entry in entries.items()}
            )
        aliases = {name.lower(): ModelRef.parse(target) for name, target in wire.aliases.items()}
        for name, ref in aliases.items():
            if ref.model not in models.get(ProviderId(ref.provider), {}):
                raise ValueError(f"alias {name!r} points at {ref}, which the catalog does not list")
        return cls(
            version=wire.version,
            updated=wire.updated,
            currency=wire.currency,
            models=MappingProxyType(models),
            aliases=MappingProxyType(aliases),
        )

    @classmethod
    def load(cls, path: Path = CATALOG_PATH) -> Catalog:
        return cls.from_json(path.read_bytes())

    def info(self, provider: ProviderId, model: str) -> ModelInfo | None:
        return self.models.get(provider, {}).get(model)

    def alias(self, name: str) -> ModelRef | None:
        return self.aliases.get(name.lower())

    def providers_for(self, model: str) -> tuple[ProviderId, ...]:
        """Providers whose catalog lists a bare model id, in the contract's provider order."""
        return tuple(p for p in ProviderId if model in self.models.get(p, {}))

    def model_for(self, conn: ConnectionView, model: str) -> ModelInfo | None:
        """What `conn` offers under `model`, merging its declaration, the catalog and its model list.

        A connection that declares models offers exactly those. Otherwise the catalog entry
        is used; a model unknown to the catalog is offered as text-only, since a public
        provider may well serve models newer than this file.
        """
        if conn.declared_models:
            declared = conn.declared(model)
            if declared is None:
                return None
            known = self.info(conn.provider, model)
            return ModelInfo(
                provider=conn.provider,
                id=model,
                capabilities=declared.capabilities,
                context_window=known.context_window if known else None,
                max_output=known.max_output if known else None,
                price=declared.price if declared.price is not None else (known.price if known else None),
                source="declared",
            )
        known = self.info(conn.provider, model)
        if known is not None:
            return known
        source = "reported" if model in conn.reported_models else "unknown"
        return ModelInfo(
            provider=conn.provider, id=model, capabilities=UNKNOWN_MODEL_CAPABILITIES, source=source
        )

    def models_for_connection(self, conn: ConnectionView) -> list[ModelInfo]:
        """Every model a connection can be asked for: declared ones, or catalog plus reported."""
        if conn.declared_models:
            return [info for d in conn.declared_models if (info := self.model_for(conn, d.id)) is not None]
        known = dict(self.models.get(conn.provider, {}))
        for model in sorted(conn.reported_models - known.keys()):
            known[model] = ModelInfo(
                provider=conn.provider, id=model, capabilities=UNKNOWN_MODEL_CAPABILITIES, source="reported"
            )
        return list(known.values())


def _info(provider: ProviderId, model_id: str, entry: _ModelWire) -> ModelInfo:
    price = (
        _price(entry.price.model_dump(exclude_none=True), f"{provider.value}/{model_id}")
        if entry.price
        else None
    )
    return ModelInfo(
        provider=provider,
        id=model_id,
        capabilities=frozenset(entry.capabilities),
        context_window=entry.context_window,
        max_output=entry.max_output,
        price=price,
    )


def _price(usd: dict[str, Decimal], where: str) -> Price:
    try:
        return Price.from_usd(usd, param=f"price of {where}")
    except RequestError as exc:
        raise ValueError(f"catalog: {exc}") from None


def price_for(info: ModelInfo) -> Price | None:
    """The list price of a model as a connection offers it (`Catalog.model_for`), for billing:
    the connection's declared price for the model, else the catalog's; the built-in engines
    cost nothing; None when the model is unpriced (a model the catalog does not know, declared
    without a price)."""
    if info.provider is ProviderId.INTERNAL:
        return FREE
    return info.price


@functools.cache
def default_catalog() -> Catalog:
    """The packaged catalog, loaded once per process."""
    return Catalog.load()
