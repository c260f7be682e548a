"""The one narrow base every chat adapter implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from providers.contract import ProviderPreset, WireProtocol
from providers.credentials import Credential
from providers.types import ChatRequest, ChatResponse, StreamEvent


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where and as whom one attempt calls: a resolved connection, minus everything else."""

    preset: ProviderPreset
    base_url: str
    credential: Credential
    extra_headers: Mapping[str, str] = field(default_factory=dict)
    label: str = ""
    """The auth-profile id (`provider:name`) for errors and logs."""


class ChatAdapter(ABC):
    protocol: ClassVar[WireProtocol]

    @abstractmethod
    async def complete(self, request: ChatRequest, endpoint: Endpoint) -> ChatResponse: ...

    @abstractmethod
    def stream(self, request: ChatRequest, endpoint: Endpoint) -> AsyncIterator[StreamEvent]:
        """Yield normalized events; raise `ProviderError` on failure, before or after output."""
