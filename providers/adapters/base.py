"""The one narrow base every chat adapter implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from types import TracebackType
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


SHAPE_ERRORS = (KeyError, IndexError, TypeError, AttributeError, ValueError)
"""What a translator raises on JSON that breaks the vendor's shape."""


def malformed(what: str, exc: BaseException, *, provider: str, model: str | None) -> ProviderError:
    """The provider's server error for a body that broke the vendor's shape (`vendor_shape`)."""
    return ProviderError(
        ErrorClass.SERVER_ERROR,
        f"malformed {what} from upstream ({type(exc).__name__})",
        provider=provider,
        model=model,
    )


class vendor_shape:  # lower case: it is used as a function, `with vendor_shape(...)`
    """Around a wire translator, which reads the vendor's documented JSON shape: a body that
    breaks that shape (a list where an object belongs, a missing field) is the provider's
    server error, typed, never an unhandled exception (tests/providers/test_stream_parser_properties.py).

    A class rather than a `contextlib.contextmanager`, which costs several times more to enter
    and leave; the hottest per-chunk sites catch `SHAPE_ERRORS` inline instead (`malformed`)."""

    __slots__ = ("_model", "_provider", "_what")

    def __init__(self, what: str, *, provider: str, model: str | None = None) -> None:
        self._what = what
        self._provider = provider
        self._model = model

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is None or isinstance(exc, ProviderError) or not isinstance(exc, SHAPE_ERRORS):
            return
        raise malformed(self._what, exc, provider=self._provider, model=self._model) from None
