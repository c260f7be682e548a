from __future__ import annotations

import json
from dataclasses import replace
from decimal import Decimal

import pytest
from pydantic import ValidationError

from providers.contract import PRESETS, Capability, ModelRef, ProviderId
from routing.catalog import CATALOG_PATH, Catalog, default_catalog
from routing.model import DeclaredModel
from tests.routing.fakes import conn


def test_packaged_catalog_loads_and_is_versioned() -> None:
    catalog = default_catalog()
    assert catalog.version == 1
    gpt4o = catalog.info(ProviderId.OPENAI, "gpt-4o")
    assert gpt4o is not None
    assert Capability.VISION in gpt4o.capabilities
    assert gpt4o.context_window == 128_000
    assert gpt4o.price is not None and gpt4o.price.input == Decimal("2.5")


def test_every_catalog_provider_is_a_known_public_provider() -> None:
    raw = json.loads(CATALOG_PATH.read_text())
    for provider, models in raw["providers"].items():
        assert ProviderId(provider) in PRESETS
        assert ProviderId(provider) not in (ProviderId.OPENAI_COMPATIBLE, ProviderId.INTERNAL)
        for model_id, entry in models.items():
            caps = set(entry["capabilities"])
            speech = caps & {"stt", "tts"}
            assert speech or "text" in caps, model_id
            if not speech:
                assert entry["price"]["input"] >= 0 and entry["price"]["output"] >= 0, model_id
                assert entry["context_window"] and entry["max_output"], model_id


def test_aliases_and_bare_ids() -> None:
    catalog = default_catalog()
    assert catalog.alias("Sonnet") == ModelRef("anthropic", "claude-sonnet-4-5")
    assert catalog.providers_for("grok-4") == (ProviderId.XAI,)
    assert catalog.providers_for("nope") == ()


def test_rejects_unknown_fields_bad_versions_and_dangling_aliases() -> None:
    raw = json.loads(CATALOG_PATH.read_text())
    bad_field = json.loads(json.dumps(raw))
    bad_field["providers"]["openai"]["gpt-4o"]["contxt_window"] = 1
    with pytest.raises(ValidationError):
        Catalog.from_json(json.dumps(bad_field))
    bad_version = {**raw, "version": 99}
    with pytest.raises(ValueError, match="version"):
        Catalog.from_json(json.dumps(bad_version))
    dangling = {**raw, "aliases": {"x": "openai/not-there"}}
    with pytest.raises(ValueError, match="alias"):
        Catalog.from_json(json.dumps(dangling))


def test_declared_models_win_and_limit_what_a_private_endpoint_offers() -> None:
    catalog = default_catalog()
    lab = conn(
        "openai_compatible",
        "lab",
        models=[DeclaredModel("llama", frozenset({Capability.TEXT, Capability.VISION}))],
    )
    info = catalog.model_for(lab, "llama")
    assert info is not None and info.source == "declared" and Capability.VISION in info.capabilities
    assert catalog.model_for(lab, "other") is None
    assert [m.id for m in catalog.models_for_connection(lab)] == ["llama"]


def test_reported_models_merge_with_the_catalog() -> None:
    catalog = default_catalog()
    openai = replace(conn("openai"), reported_models=frozenset({"gpt-4o", "gpt-9-preview"}))
    merged = {m.id: m for m in catalog.models_for_connection(openai)}
    assert merged["gpt-4o"].source == "catalog"
    assert merged["gpt-9-preview"].source == "reported"
    assert merged["gpt-9-preview"].capabilities == frozenset({Capability.TEXT})
    assert "gpt-4o-mini" in merged
    unknown = catalog.model_for(conn("openai"), "brand-new")
    assert unknown is not None and unknown.capabilities == frozenset({Capability.TEXT})
