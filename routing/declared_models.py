"""The models a connection declares (private endpoints, custom providers), as stored on its row.

Each is `{"id", "capabilities", "price"?}`; the price is optional, in exact USD strings per unit
(`billing.prices.Price.usd`), and wins over the catalog's for that connection's model
(docs/billing.md#declared-prices). Validation raises `RequestError`s naming the field at fault.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from billing.prices import Price, PriceError
from foundation.errors import RequestError
from providers.contract import Capability

MAX_MODEL_ID_CHARS = 255
MAX_MODELS = 500
"""Bounds on what a connection row stores: every surface shows and snapshots these whole."""


def declared_models(models: Sequence[str | dict[str, Any]] | None) -> list[dict[str, Any]]:
    """Declared models: plain ids get text capability; dicts may list capabilities and a price
    (a `Price`, or USD amounts per unit as docs/billing.md#declared-prices describes)."""
    if models is not None and len(models) > MAX_MODELS:
        raise RequestError(f"a connection declares at most {MAX_MODELS} models", param="models")
    out: list[dict[str, Any]] = []
    for index, m in enumerate(models or ()):
        if isinstance(m, str):
            model_id, caps, price = m, [Capability.TEXT.value], None
        else:
            model_id, caps = str(m.get("id", "")), list(m.get("capabilities") or [Capability.TEXT.value])
            price = m.get("price")
        if not model_id.strip():
            raise RequestError("a declared model needs an id", param="models")
        if len(model_id) > MAX_MODEL_ID_CHARS:
            raise RequestError(f"model ids are at most {MAX_MODEL_ID_CHARS} characters", param="models")
        unknown = [c for c in caps if c not in {cap.value for cap in Capability}]
        if unknown:
            raise RequestError(
                f"unknown capabilities for model {model_id!r}: {', '.join(unknown)}", param="models"
            )
        entry: dict[str, Any] = {"id": model_id.strip(), "capabilities": sorted(set(caps))}
        if price is not None:
            entry["price"] = _price(price, f"models.{index}.price").usd()
        out.append(entry)
    ids = [e["id"] for e in out]
    if len(set(ids)) != len(ids):
        raise RequestError("each model is declared once", param="models")
    return out


def _price(value: object, param: str) -> Price:
    if isinstance(value, Price):
        return value
    if not isinstance(value, Mapping):
        raise PriceError(
            f'{param} is an object of USD amounts per unit, such as {{"input": "0.15"}}', param=param
        )
    return Price.from_usd(value, param=param)


def with_prices(models: list[dict[str, Any]], prices: Mapping[str, Price]) -> list[dict[str, Any]]:
    """Set the prices of declared models, by id; naming a model the connection does not declare is refused."""
    declared = {m["id"] for m in models}
    undeclared = sorted(set(prices) - declared)
    if undeclared:
        raise RequestError(
            f"a price names {', '.join(undeclared)}, which the connection does not declare; declare it as a model first",
            param="price",
        )
    return [{**m, "price": prices[m["id"]].usd()} if m["id"] in prices else m for m in models]
