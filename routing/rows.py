"""The columns an org's snapshot and credentials are built from, as plain tuples.

An org's first request waits for its rows (`routing.org_rows`). Read as ORM objects they cost
about a third more CPU than the statement itself (the ORM's execution context, an instance and
its state per row, every column of every table converted), so that read selects only the
columns below, as Core rows, and wraps each table's share of a row in one of these named tuples.
The snapshot and the credentials read rows through the protocols here, which the ORM classes
(`routing.tables`) satisfy as well: the admin API and the tests pass those.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, NamedTuple, Protocol


class ConnectionRecord(Protocol):
    """A connection's columns routing reads (`routing.tables.Connection` or `ConnectionRow`)."""

    @property
    def id(self) -> str: ...
    @property
    def org_id(self) -> str | None: ...
    @property
    def provider(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def base_url(self) -> str | None: ...
    @property
    def position(self) -> int | None: ...
    @property
    def status(self) -> str: ...
    @property
    def credential_source(self) -> str: ...
    @property
    def secret_id(self) -> str | None: ...
    @property
    def env_reference(self) -> str | None: ...
    @property
    def key_fingerprint(self) -> str | None: ...
    @property
    def key_set_at(self) -> datetime | None: ...
    @property
    def models(self) -> list[dict[str, Any]] | None: ...
    @property
    def health_models(self) -> list[str] | None: ...
    @property
    def profile_id(self) -> str: ...


class AISettingsRecord(Protocol):
    """An org's AI settings as routing reads them (`routing.tables.OrgAISettings` or `AISettingsRow`)."""

    @property
    def default_model(self) -> str | None: ...
    @property
    def allowed_models(self) -> list[str] | None: ...
    @property
    def routing(self) -> Mapping[str, Any] | None: ...
    @property
    def profile_order_explicit(self) -> list[str] | None: ...
    @property
    def byok_enabled(self) -> bool | None: ...
    @property
    def conformance_gates(self) -> bool | None: ...
    @property
    def conformance_thresholds(self) -> Mapping[str, Any] | None: ...
    @property
    def conformance_overrides(self) -> list[dict[str, str]] | None: ...


class OrgHead(NamedTuple):
    """The org's own columns routing reads (`foundation.orgs.Org`)."""

    id: str
    tier: str
    content_logging: bool | None


class AISettingsRow(NamedTuple):
    org_id: str
    default_model: str | None
    allowed_models: list[str] | None
    routing: dict[str, Any] | None
    profile_order_explicit: list[str] | None
    byok_enabled: bool | None
    conformance_gates: bool | None
    conformance_thresholds: dict[str, Any] | None
    conformance_overrides: list[dict[str, str]] | None


class ConnectionRow(NamedTuple):
    id: str
    org_id: str | None
    provider: str
    name: str
    base_url: str | None
    position: int | None
    status: str
    credential_source: str
    secret_id: str | None
    env_reference: str | None
    key_fingerprint: str | None
    key_set_at: datetime | None
    models: list[dict[str, Any]] | None
    health_models: list[str] | None

    @property
    def profile_id(self) -> str:
        return f"{self.provider}:{self.name}"


class SecretRow(NamedTuple):
    """A vault record's columns a credential is made of (`providers.vault.store.SealedRecord`)."""

    id: str
    org_id: str
    owner_id: str
    field: str
    ciphertext: bytes
    nonce: bytes
    wrapped_key: bytes
    wrap_nonce: bytes
    key_version: str
    fingerprint: str
