"""The models a connection declares (private endpoints, custom providers), as stored on its row.

Each is `{"id", "capabilities", "price"?}`; the price is optional, in exact USD strings per unit
(`billing.prices.Price.usd`), and wins over the catalog's for that connection's model
(docs/billing.md#declared-prices). Validation raises `RequestError`s naming the field at fault.

On the command line, in the admin API and in the UI a model may be written `ID[:cap,cap...]`
(`llama-3-70b:text,tools,json`). Ids may contain colons themselves (`llama3.1:8b`), so the part
after the last colon is read as capabilities only when it is a list of them; a list with a comma
and an unknown name in it is refused rather than taken as part of the id.
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


_CAPABILITIES = frozenset(c.value for c in Capability)


def parse_model_spec(spec: str) -> dict[str, Any]:
    """`llama-3-70b:text,tools,json` → `{"id": "llama-3-70b", "capabilities": [...]}`; a bare id
    (or one whose last colon is part of it, `llama3.1:8b`) → `{"id": ...}` (text only)."""
    model_id, sep, tail = spec.strip().rpartition(":")
    if not sep:
        return {"id": spec.strip()}
    caps = [c.strip().lower() for c in tail.split(",") if c.strip()]
    unknown = [c for c in caps if c not in _CAPABILITIES]
    if caps and not unknown:
        return {"id": model_id.strip(), "capabilities": caps}
    if "," in tail:
        raise RequestError(
            f"unknown capabilities for model {model_id.strip()!r}: {', '.join(unknown)}; "
            f"known: {', '.join(sorted(_CAPABILITIES))} (write ID:cap,cap, e.g. llama-3-70b:text,tools,json)",
            param="models",
        )
    return {"id": spec.strip()}


def describe_model(entry: Mapping[str, Any]) -> str:
    """A declared model as `ID:cap,cap`, the form `parse_model_spec` reads back."""
    caps = entry.get("capabilities") or [Capability.TEXT.value]
    return f"{entry['id']}:{','.join(caps)}"


def declared_models(models: Sequence[str | dict[str, Any]] | None) -> list[dict[str, Any]]:
    """Declared models: plain ids get text capability (`ID:cap,cap` lists them); dicts may list
    capabilities and a price (a `Price`, or USD amounts per unit as docs/billing.md#declared-prices
    describes)."""
    if models is not None and len(models) > MAX_MODELS:
        raise RequestError(f"a connection declares at most {MAX_MODELS} models", param="models")
    out: list[dict[str, Any]] = []
    for index, m in enumerate(models or ()):
        spec = parse_model_spec(m) if isinstance(m, str) else m
        model_id, caps = str(spec.get("id", "")), list(spec.get("capabilities") or [Capability.TEXT.value])
        price = spec.get("price")
        if not model_id.strip():
            raise RequestError("a declared model needs an id", param="models")
        if len(model_id) > MAX_MODEL_ID_CHARS:
            raise RequestError(f"model ids are at most {MAX_MODEL_ID_CHARS} characters", param="models")
        unknown = [c for c in caps if c not in {cap.value for cap in Capability}]
        if unknown:
            raise RequestError(
                f"unknown capabilities for model {model_id!r}: {', '.join(unknown)}; "
                f"known: {', '.join(sorted(_CAPABILITIES))}",
                param="models",
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
