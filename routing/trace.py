"""The attempt trace: what was tried for one request, why each candidate was skipped or failed,
which one served, and where its cost lands.

Reasons use one vocabulary (docs/routing.md): `skipped:<why>[:<detail>]`,
`failed:<error class>[:<detail>]`, `served`. A trace carries model refs, profile ids, error
classes and statuses only; never prompts, outputs or keys, so it can go to logs and headers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from providers.contract import BillingSource, ErrorClass


class Outcome(StrEnum):
    SERVED = "served"
    SKIPPED = "skipped"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class TraceEntry:
    ref: str
    """The model ref as the provider would be addressed (`openai/gpt-4o`, `mylab/llama-3`)."""
    profile_id: str | None
    outcome: Outcome
    reason: str = ""
    """The detail after the outcome: `cooldown:rate_limit`, `capability:vision`, `rate_limit:429`."""
    billing_source: BillingSource | None = None
    error_class: ErrorClass | None = None
    status: int | None = None
    retries: int = 0
    elapsed_ms: float | None = None
    after_output: bool = False
    """A failure after output reached the caller (reported, never retried or fallen back from)."""
    retry_after: float | None = None
    """For a skip by a cooldown or disable: the seconds it had left when the plan was made."""

    @property
    def label(self) -> str:
        return f"{self.outcome.value}:{self.reason}" if self.reason else self.outcome.value

    @property
    def target(self) -> str:
        if self.profile_id is None:
            return self.ref
        _, _, model = self.ref.partition("/")
        return f"{self.profile_id}/{model}"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ref": self.ref, "profile": self.profile_id, "result": self.label}
        if self.billing_source is not None:
            out["billing_source"] = self.billing_source.value
        if self.error_class is not None:
            out["error_class"] = self.error_class.value
        if self.status is not None:
            out["status"] = self.status
        if self.retries:
            out["retries"] = self.retries
        if self.elapsed_ms is not None:
            out["elapsed_ms"] = round(self.elapsed_ms, 1)
        if self.after_output:
            out["after_output"] = True
        return out


@dataclass(slots=True)
class AttemptTrace:
    """Entries in the order they were decided; append-only while a request runs."""

    intent: str = ""
    source: str = ""
    """Where the chain came from: `pinned`, `agent:<name>`, `org:<intent>`, `org:default`."""
    entries: list[TraceEntry] = field(default_factory=list)

    def add(self, entry: TraceEntry) -> None:
        self.entries.append(entry)

    @property
    def served(self) -> TraceEntry | None:
        for entry in self.entries:
            if entry.outcome is Outcome.SERVED:
                return entry
        return None

    @property
    def billing_source(self) -> BillingSource | None:
        served = self.served
        return served.billing_source if served else None

    def to_dict(self) -> dict[str, Any]:
        served = self.served
        return {
            "intent": self.intent,
            "source": self.source,
            "served": served.target if served else None,
            "billing_source": served.billing_source.value if served and served.billing_source else None,
            "attempts": [e.to_dict() for e in self.entries],
        }

    def header(self) -> str:
        """Compact form for a response header: `openai:main/gpt-4o=served;anthropic:default/claude=skipped:cooldown:rate_limit`."""
        return ";".join(f"{e.target}={e.label}" for e in self.entries)
