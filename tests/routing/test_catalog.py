from __future__ import annotations

import json
from dataclasses import replace

import pytest
from pydantic import ValidationError

from billing.prices import FREE, Price
from providers.contract import PRESETS, Capability, ModelRef, ProviderId
from routing.catalog import CATALOG_PATH, Catalog, ModelInfo, default_catalog, price_for
from routing.model import DeclaredModel
from tests.routing.fakes import conn


def test_packaged_catalog_loads_and_is_versioned() -> None:
    catalog = default_catalog()
    assert catalog.version == 1
    gpt4o = catalog.info(ProviderId.OPENAI, "gpt-4o")
    assert gpt4o is not None
    assert Capability.VISION in gpt4o.capabilities
    assert gpt4o.context_window == 128_000
    assert gpt4o.price == Price(input=2_500_000, output=10_000_000, cached_input=1_250_000)


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


def test_every_catalog_price_is_exact_micro_usd_and_speech_models_have_speech_prices() -> None:
    raw = json.loads(CATALOG_PATH.read_text())
    catalog = default_catalog()
    for provider, models in raw["providers"].items():
        for model_id, entry in models.items():
            info = catalog.info(ProviderId(provider), model_id)
            assert info is not None and info.price is not None, model_id
            # The float in the file and the integer price agree exactly: nothing was rounded.
            for field, usd in entry["price"].items():
                assert getattr(info.price, field) == round(usd * 1_000_000), (model_id, field)
            if Capability.STT in info.capabilities:
                assert info.price.per_minute is not None, model_id
            if Capability.TTS in info.capabilities:
                assert (info.price.per_minute is None) != (info.price.per_1m_chars is None), model_id


def test_a_catalog_price_finer_than_a_micro_dollar_is_refused_not_rounded() -> None:
    raw = json.loads(CATALOG_PATH.read_text())
    raw["providers"]["openai"]["gpt-4o"]["price"]["input"] = 2.5000001
    with pytest.raises(ValueError, match="openai/gpt-4o"):
        Catalog.from_json(json.dumps(raw))
    raw["providers"]["openai"]["gpt-4o"]["price"]["input"] = -1
    with pytest.raises(ValueError, match="negative"):
        Catalog.from_json(json.dumps(raw))


def test_a_declared_price_wins_over_the_catalog_for_that_connection_only() -> None:
    catalog = default_catalog()
    own = Price(input=100_000, output=200_000)
    declared = conn(
        "openai", "deal", models=[DeclaredModel("gpt-4o", frozenset({Capability.TEXT}), price=own)]
    )
    unpriced = conn("openai", "plain", models=[DeclaredModel("gpt-4o", frozenset({Capability.TEXT}))])
    lab = conn("openai_compatible", "lab", models=[DeclaredModel("llama", frozenset({Capability.TEXT}))])
    known = catalog.info(ProviderId.OPENAI, "gpt-4o")
    assert known is not None and known.price is not None and known.price != own
    info = catalog.model_for(declared, "gpt-4o")
    assert info is not None and price_for(info) == own
    plain = catalog.model_for(unpriced, "gpt-4o")
    assert plain is not None and price_for(plain) == known.price
    listed = catalog.model_for(conn("openai"), "gpt-4o")
    assert listed is not None and price_for(listed) == known.price
    llama = catalog.model_for(lab, "llama")
    assert llama is not None and price_for(llama) is None
    unknown = catalog.model_for(conn("openai"), "brand-new")
    assert unknown is not None and price_for(unknown) is None


def test_the_built_in_engines_cost_nothing() -> None:
    engine = ModelInfo(provider=ProviderId.INTERNAL, id="whisper", capabilities=frozenset({Capability.STT}))
    assert price_for(engine) == FREE
