"""Platform connections in an org's snapshot, and the tier table applied by the resolver. Pure:
rows in, plans out (docs/routing.md#platform-connections)."""

from __future__ import annotations

from dataclasses import dataclass

from billing.policy import SKIP_REASONS, billing_policy
from providers.contract import BillingSource, ProviderId
from routing.catalog import default_catalog
from routing.model import OrgRouting
from routing.resolver import Plan, PlannedAttempt, Resolver, RouteRequest
from routing.snapshot import build_org_routing
from routing.tables import Connection, OrgAISettings

resolver = Resolver(default_catalog())
LAB_MODEL = [{"id": "llama", "capabilities": ["text"]}]


@dataclass
class OrgRow:
    id: str = "org_1"
    tier: str = "enterprise"


def own(provider: str, name: str, **kw: object) -> Connection:
    source = "org_private_endpoint" if provider == "openai_compatible" else "org_key"
    return Connection(
        id=f"conn_{name}",
        org_id="org_1",
        provider=provider,
        name=name,
        position=0,
        status=kw.pop("status", "active"),
        credential_kind="api_key",
        credential_source=source,
        **kw,
    )


def plat(provider: str, name: str = "platform", **kw: object) -> Connection:
    return Connection(
        id=f"conn_p_{name}",
        org_id=None,
        provider=provider,
        name=name,
        position=0,
        status="active",
        credential_kind="api_key",
        credential_source="platform_key",
        **kw,
    )


def snapshot(
    tier: str, mine: list[Connection], platform: list[Connection], *, byok_override: bool = False
) -> OrgRouting:
    settings = OrgAISettings(org_id="org_1", routing={}, byok_enabled=byok_override)
    return build_org_routing(
        OrgRow(tier=tier), settings, mine, [], platform=platform, billing_policy=billing_policy
    )


def labels(plan: Plan) -> list[str]:
    return [
        f"{i.connection.profile_id}=try"
        if isinstance(i, PlannedAttempt)
        else f"{i.target.split('/')[0]}={i.label}"
        for i in plan.items
    ]


def plan(org: OrgRouting, model: str) -> list[str]:
    return labels(resolver.plan(org, RouteRequest(model=model), {}, 0.0))


def test_an_org_without_its_own_connection_routes_to_the_platforms() -> None:
    org = snapshot("enterprise", [], [plat("openai")])
    [view] = org.profiles[ProviderId.OPENAI]
    assert view.platform and view.billing_source is BillingSource.PLATFORM
    assert view.org_id == "org_1"  # its cooldowns are the org's own
    assert plan(org, "openai/gpt-4o-mini") == ["openai:platform=try"]


def test_the_orgs_own_connection_wins_unless_the_ref_names_the_platforms() -> None:
    org = snapshot("enterprise", [own("openai", "main")], [plat("openai")])
    assert plan(org, "openai/gpt-4o-mini") == ["openai:main=try"]
    assert plan(org, "openai:platform/gpt-4o-mini") == ["openai:platform=try"]
    # A disabled own connection still wins: turning your key off does not move you onto credits.
    org = snapshot("enterprise", [own("openai", "main", status="disabled")], [plat("openai")])
    assert plan(org, "openai/gpt-4o-mini") == ["openai:main=skipped:status:disabled"]


def test_a_tier_without_byok_skips_the_orgs_key_and_falls_to_the_platform() -> None:
    org = snapshot("free", [own("openai", "main")], [plat("openai")])
    assert org.allowed_billing == frozenset({BillingSource.PLATFORM})
    assert plan(org, "openai/gpt-4o-mini") == [
        f"openai:main={SKIP_REASONS[BillingSource.BYOK]}",
        "openai:platform=try",
    ]
    assert SKIP_REASONS[BillingSource.BYOK] == "skipped:tier:byok"


def test_the_byok_override_keeps_byok_on_any_tier() -> None:
    org = snapshot("free", [own("openai", "main")], [plat("openai")], byok_override=True)
    assert BillingSource.BYOK in org.allowed_billing and BillingSource.PRIVATE not in org.allowed_billing
    assert plan(org, "openai/gpt-4o-mini") == ["openai:main=try"]


def test_private_endpoints_by_tier_and_custom_names() -> None:
    lab = own("openai_compatible", "lab", base_url="http://10.0.0.5/v1", models=LAB_MODEL)
    shared = plat("openai_compatible", "plat", base_url="https://llm.example/v1", models=LAB_MODEL)
    free = snapshot("free", [lab], [shared])
    assert plan(free, "lab/llama") == ["openai_compatible:lab=skipped:tier:private"]
    assert plan(free, "plat/llama") == ["openai_compatible:plat=try"]
    # The same name is the same profile id: the org's own endpoint hides the platform's.
    mine = own("openai_compatible", "plat", base_url="http://10.0.0.5/v1", models=LAB_MODEL)
    org = snapshot("free", [mine], [shared])
    assert org.custom["plat"].platform is False and ProviderId.OPENAI_COMPATIBLE not in org.platform
    assert plan(org, "plat/llama") == ["openai_compatible:plat=skipped:tier:private"]


def test_a_tier_without_platform_models_skips_them() -> None:
    org = build_org_routing(
        OrgRow(),
        None,
        [],
        [],
        platform=[plat("openai")],
        billing_policy=lambda tier, byok_override=False: frozenset({BillingSource.BYOK}),
    )
    assert plan(org, "openai/gpt-4o-mini") == ["openai:platform=skipped:tier:platform"]


def test_a_platform_profile_named_like_the_orgs_is_hidden_with_a_warning() -> None:
    org = snapshot("free", [own("openai", "main")], [plat("openai", "main"), plat("openai", "spare")])
    assert [c.profile_id for c in org.platform[ProviderId.OPENAI]] == ["openai:spare"]
    assert plan(org, "openai/gpt-4o-mini") == ["openai:main=skipped:tier:byok", "openai:spare=try"]
    assert any("openai:main is hidden" in w for w in org.warnings)
