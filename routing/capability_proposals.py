"""What `connection test` proposes to declare: each model an endpoint serves, with capabilities.

Evidence is consulted in order: measured results first (the conformance harness's, through the
`CapabilityEvidence` seam), then the catalog (the connection's own provider, else any provider
listing the same model id), else nothing is known and only `text` is proposed. A proposal is
shown as the `ID:cap,cap` spec `connection update --model` accepts, so it can be pasted back.

Pure: the listed models come from the probes, the declared ones from the row.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from providers.contract import Capability, ProviderId
from routing.catalog import Catalog

_PROVIDERS = frozenset(p.value for p in ProviderId)


class CapabilityEvidence(Protocol):
    """Capabilities measured for a connection's models; None when a model was never measured."""

    def capabilities(self, model: str) -> frozenset[Capability] | None: ...


@dataclass(frozen=True, slots=True)
class Proposal:
    model: str
    capabilities: tuple[str, ...]
    source: str
    """`conformance`, `catalog` (the connection's provider), `catalog:<provider>` (the same id
    listed under another provider) or `unknown` (text only, nothing says more)."""
    listed: bool
    """The endpoint's model list named it."""
    declared: tuple[str, ...] | None
    """The capabilities the connection declares for it now; None when it is not declared."""

    @property
    def spec(self) -> str:
        return f"{self.model}:{','.join(self.capabilities)}"

    @property
    def differs(self) -> bool:
        """Declared (or about to be) with other capabilities than proposed."""
        return self.declared is not None and self.declared != self.capabilities


def propose(
    provider: str,
    listed: Iterable[str],
    declared: Sequence[Mapping[str, Any]],
    catalog: Catalog,
    evidence: CapabilityEvidence | None = None,
) -> list[Proposal]:
    """One proposal per model listed by the endpoint or declared on the connection, in that order."""
    declared_caps = {str(d["id"]): tuple(sorted(d.get("capabilities") or ("text",))) for d in declared}
    listed_ids = list(dict.fromkeys(listed))
    models = list(dict.fromkeys([*listed_ids, *declared_caps]))
    out: list[Proposal] = []
    for model in models:
        caps, source = _evidence(provider, model, catalog, evidence)
        out.append(
            Proposal(
                model=model,
                capabilities=tuple(sorted(c.value for c in caps)),
                source=source,
                listed=model in listed_ids,
                declared=declared_caps.get(model),
            )
        )
    return out


def _evidence(
    provider: str, model: str, catalog: Catalog, evidence: CapabilityEvidence | None
) -> tuple[frozenset[Capability], str]:
    measured = evidence.capabilities(model) if evidence is not None else None
    if measured:
        return measured, "conformance"
    own = catalog.info(ProviderId(provider), model) if provider in _PROVIDERS else None
    if own is not None:
        return own.capabilities, "catalog"
    for other in catalog.providers_for(model):
        info = catalog.info(other, model)
        if info is not None:
            return info.capabilities, f"catalog:{other.value}"
    return frozenset({Capability.TEXT}), "unknown"


def proposal_lines(proposals: Sequence[Proposal]) -> list[str]:
    """Readable lines for the terminal: the spec to declare, where it comes from, what differs."""
    lines = []
    for p in proposals:
        notes = [p.source]
        if not p.listed:
            notes.append("declared, not listed by the endpoint")
        if p.differs:
            notes.append(f"declared now: {','.join(p.declared or ())}")
        lines.append(f"  {p.spec}\t({'; '.join(notes)})")
    return lines
