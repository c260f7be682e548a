"""The contract in code and docs/contract.md must list exactly the same entries."""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path

import pytest

from providers import contract
from providers.contract import (
    ERROR_POLICY,
    PRESETS,
    AuthStyle,
    BillingSource,
    Capability,
    CredentialKind,
    CredentialSource,
    ErrorAction,
    ErrorClass,
    ModelRef,
    ProviderId,
    WireProtocol,
    billing_source_for,
    credential_source_for,
    error_class_for_status,
)

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "contract.md").read_text()

SECTIONS: dict[str, type[StrEnum]] = {
    "Provider ids": ProviderId,
    "Wire protocols": WireProtocol,
    "Auth styles": AuthStyle,
    "Capabilities": Capability,
    "Credential kinds": CredentialKind,
    "Credential sources": CredentialSource,
    "Billing sources": BillingSource,
    "Error classes": ErrorClass,
}


def doc_entries(heading: str) -> list[str]:
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", DOC, re.M | re.S)
    assert match, f"docs/contract.md has no section {heading!r}"
    return re.findall(r"^- `([^`]+)`", match.group(1), re.M)


@pytest.mark.parametrize("heading", list(SECTIONS))
def test_doc_lists_exactly_the_enum(heading: str) -> None:
    entries = doc_entries(heading)
    assert len(entries) == len(set(entries)), f"duplicate lines in {heading}"
    assert set(entries) == {m.value for m in SECTIONS[heading]}


def test_billing_sources_are_exactly_the_three() -> None:
    assert [b.value for b in BillingSource] == ["platform", "byok", "private"]


def test_every_error_class_has_one_policy_consistent_with_the_doc() -> None:
    assert set(ERROR_POLICY) == set(ErrorClass)
    section = DOC.split("## Error classes", 1)[1].split("\n## ", 1)[0]
    words = {ErrorAction.RETRY: "retry", ErrorAction.FALLBACK: "fallback", ErrorAction.FAIL_FAST: "fail fast"}
    for cls, policy in ERROR_POLICY.items():
        line = next(line for line in section.splitlines() if line.startswith(f"- `{cls.value}`"))
        assert line.rstrip(".").endswith(words[policy.action]), line
        assert policy.fallback_eligible == (policy.action is not ErrorAction.FAIL_FAST)
        assert policy.retryable == (policy.action is ErrorAction.RETRY)


def test_the_billing_rule_covers_every_source_and_matches_the_doc() -> None:
    expected = {
        CredentialSource.PLATFORM_KEY: BillingSource.PLATFORM,
        CredentialSource.ORG_KEY: BillingSource.BYOK,
        CredentialSource.ORG_PRIVATE_ENDPOINT: BillingSource.PRIVATE,
        CredentialSource.ENV_REFERENCE: BillingSource.PLATFORM,
    }
    for source, billing in expected.items():
        assert billing_source_for(source) is billing
        assert f"`{source.value}` → `{billing.value}`" in DOC


@pytest.mark.parametrize(
    ("provider", "org_owned", "env", "source"),
    [
        (ProviderId.OPENAI, True, False, CredentialSource.ORG_KEY),
        (ProviderId.OPENROUTER, True, False, CredentialSource.ORG_KEY),
        (ProviderId.OPENAI_COMPATIBLE, True, False, CredentialSource.ORG_PRIVATE_ENDPOINT),
        (ProviderId.OPENAI, False, False, CredentialSource.PLATFORM_KEY),
        (ProviderId.INTERNAL, True, False, CredentialSource.PLATFORM_KEY),
        (ProviderId.ANTHROPIC, False, True, CredentialSource.ENV_REFERENCE),
    ],
)
def test_credential_source_classification(
    provider: ProviderId, org_owned: bool, env: bool, source: CredentialSource
) -> None:
    assert credential_source_for(provider, org_owned=org_owned, env_reference=env) is source


def test_every_provider_has_a_preset_documented_with_its_protocol_and_auth() -> None:
    assert set(PRESETS) == set(ProviderId)
    for pid, preset in PRESETS.items():
        line = next(line for line in DOC.splitlines() if line.startswith(f"- `{pid.value}`"))
        assert f"`{preset.protocol.value}`" in line
        if preset.base_url:
            assert preset.base_url in line
        if preset.auth_style is not AuthStyle.NONE:
            assert f"`{preset.auth_style.value}`" in line


def test_contract_names_are_defined_in_exactly_one_module() -> None:
    names = [
        "ProviderId",
        "WireProtocol",
        "Capability",
        "CredentialKind",
        "CredentialSource",
        "BillingSource",
        "ErrorClass",
        "AuthStyle",
        "ProviderPreset",
    ]
    pattern = re.compile(rf"^\s*class ({'|'.join(names)})\b", re.M)
    definers: dict[str, list[str]] = {}
    for pkg in ("server", "providers", "voice", "routing", "billing"):
        for path in (ROOT / pkg).rglob("*.py"):
            for name in pattern.findall(path.read_text()):
                definers.setdefault(name, []).append(str(path.relative_to(ROOT)))
    assert definers == {n: [str(Path(contract.__file__).relative_to(ROOT))] for n in names}


@pytest.mark.parametrize(
    ("ref", "provider", "model"),
    [
        ("openrouter/moonshotai/kimi-k2", "openrouter", "moonshotai/kimi-k2"),
        ("OpenAI/gpt-4o", "openai", "gpt-4o"),
        ("mylab/llama-3-70b", "mylab", "llama-3-70b"),
    ],
)
def test_model_ref_splits_on_first_slash(ref: str, provider: str, model: str) -> None:
    parsed = ModelRef.parse(ref)
    assert (parsed.provider, parsed.model) == (provider, model)
    assert str(parsed) == f"{provider}/{model}"


@pytest.mark.parametrize("bad", ["gpt-4o", "/gpt", "openai/", ""])
def test_model_ref_rejects_malformed(bad: str) -> None:
    with pytest.raises(ValueError):
        ModelRef.parse(bad)


def test_the_doc_names_the_one_status_table_exactly() -> None:
    match = re.search(r"^## Error classes\n(.*?)(?=^## |\Z)", DOC, re.M | re.S)
    assert match
    named = {
        int(status): ErrorClass(cls)
        for cls, line in re.findall(r"^- `([^`]+)`:(.*)$", match.group(1), re.M)
        for status in re.findall(r"\b([45]\d\d)\b", line)
    }
    assert named == dict(contract.HTTP_STATUS_CLASSES)


@pytest.mark.parametrize(
    ("status", "error_class"),
    [
        (529, ErrorClass.OVERLOADED),
        (599, ErrorClass.SERVER_ERROR),
        (418, ErrorClass.INVALID_REQUEST),
        (402, ErrorClass.QUOTA_EXHAUSTED),
    ],
)
def test_status_outside_or_inside_the_table(status: int, error_class: ErrorClass) -> None:
    assert error_class_for_status(status) is error_class


def test_no_wire_keeps_its_own_http_status_table() -> None:
    # A second table is how the chat and speech dialects once came to disagree on 529.
    entry = re.compile(r"^\s*[1-5]\d\d: ErrorClass\.", re.M)
    tables = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "providers").rglob("*.py")
        if entry.search(path.read_text())
    ]
    assert tables == [str(Path(contract.__file__).relative_to(ROOT))]
