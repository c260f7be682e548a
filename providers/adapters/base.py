"""The one narrow base every chat adapter implements."""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from providers.contract import ErrorClass, ProviderPreset, WireProtocol
from providers.credentials import Credential
from providers.errors import ProviderError
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


_SHAPE_ERRORS = (KeyError, IndexError, TypeError, AttributeError, ValueError)


@contextlib.contextmanager
def vendor_shape(what: str, *, provider: str, model: str | None = None) -> Iterator[None]:
    """Around a wire translator, which reads the vendor's documented JSON shape: a body that
    breaks that shape (a list where an object belongs, a missing field) is the provider's
    server error, typed, never an unhandled exception (tests/providers/test_stream_parser_properties.py)."""
    try:
        yield
    except ProviderError:
        raise
    except _SHAPE_ERRORS as exc:
        raise ProviderError(
            ErrorClass.SERVER_ERROR,
            f"malformed {what} from upstream ({type(exc).__name__})",
            provider=provider,
            model=model,
        ) from None
