"""In-tree fakes for routing tests: a chat adapter scripted per model, a credential, a wall clock."""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from billing.preflight import PreflightRequest
from billing.prices import Price
from billing.usage import UsageSegment
from providers.adapters.base import ChatAdapter, Endpoint
from providers.contract import (
    BillingSource,
    ErrorClass,
    ModelRef,
    ProviderId,
    WireProtocol,
    billing_source_for,
    credential_source_for,
)
from providers.errors import ProviderError
from providers.types import (
    ChatRequest,
    ChatResponse,
    Finish,
    FinishReason,
    Message,
    Role,
    StreamEvent,
    TextDelta,
    TextPart,
    Usage,
    UsageUpdate,
)
from routing.intents import Intent
from routing.model import AgentRouting, ConnectionStatus, ConnectionView, DeclaredModel, OrgRouting


class FakeCredential:
    def __init__(self, key: str) -> None:
        self._key = key

    @property
    def fingerprint(self) -> str:
        return "fp-" + self._key[-4:]

    def reveal(self, purpose: str) -> str:
        return self._key

    def __repr__(self) -> str:
        return f"FakeCredential({self.fingerprint})"


class FakeWallClock:
    """Epoch-like time that moves only when told; `sleep` advances it and records the wait."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = start
        self.slept: list[float] = []

    def time(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Reply:
    """One scripted outcome: text deltas, then optionally an error (after the text, if any)."""

    text: Sequence[str] = ("hello",)
    error: ProviderError | None = None


def fail(error_class: ErrorClass, status: int | None = None, retry_after: float | None = None) -> Reply:
    return Reply(
        text=(),
        error=ProviderError(
            error_class, f"{error_class.value}", provider="fake", status=status, retry_after=retry_after
        ),
    )


@dataclass
class Call:
    model: str
    profile: str
    key: str


class FakeChatAdapter(ChatAdapter):
    """Scripted per (profile label, model) or per model: each call pops the next reply.

    With nothing scripted, a call succeeds with "hello". Every call is recorded, including the
    revealed key, so tests can assert which profile served.
    """

    protocol: ClassVar[WireProtocol] = WireProtocol.OPENAI_CHAT

    def __init__(self) -> None:
        self.scripts: dict[str, deque[Reply]] = defaultdict(deque)
        self.calls: list[Call] = []
        self.closed = 0
        """Streams finalised so far (ended, failed or closed by the consumer)."""

    def script(self, target: str, *replies: Reply) -> None:
        """`target` is a model id or `profile_id/model`."""
        self.scripts[target].extend(replies)

    def _next(self, request: ChatRequest, endpoint: Endpoint) -> Reply:
        self.calls.append(Call(request.model, endpoint.label, endpoint.credential.reveal("test")))
        for key in (f"{endpoint.label}/{request.model}", request.model):
            if self.scripts.get(key):
                return self.scripts[key].popleft()
        return Reply()

    async def complete(self, request: ChatRequest, endpoint: Endpoint) -> ChatResponse:
        reply = self._next(request, endpoint)
        if reply.error is not None:
            raise reply.error
        return ChatResponse(
            text="".join(reply.text),
            tool_calls=(),
            finish_reason=FinishReason.STOP,
            usage=Usage(3, 1),
            model=request.model,
        )

    async def stream(self, request: ChatRequest, endpoint: Endpoint) -> AsyncIterator[StreamEvent]:
        reply = self._next(request, endpoint)
        try:
            yield UsageUpdate(Usage(input_tokens=3))
            for piece in reply.text:
                yield TextDelta(piece)
            if reply.error is not None:
                raise reply.error
            yield Finish(FinishReason.STOP)
        finally:
            self.closed += 1

    def served_by(self) -> list[str]:
        return [f"{c.profile}/{c.model}" for c in self.calls]


def conn(
    provider: str,
    name: str = "default",
    *,
    org_id: str = "org_1",
    position: int = 0,
    status: ConnectionStatus = ConnectionStatus.ACTIVE,
    base_url: str | None = None,
    models: Iterable[DeclaredModel] = (),
    platform: bool = False,
) -> ConnectionView:
    pid = ProviderId(provider)
    source = credential_source_for(pid, org_owned=not platform)
    return ConnectionView(
        connection_id=f"conn_{provider}_{name}",
        org_id=org_id,
        provider=pid,
        name=name,
        base_url=base_url,
        status=status,
        position=position,
        credential_source=source,
        billing_source=billing_source_for(source),
        declared_models=tuple(models),
    )


@dataclass
class OrgBuilder:
    """Builds an `OrgRouting` directly; as a test shorthand, a provider with any non-zero
    connection position counts as explicitly ordered."""

    connections: list[ConnectionView] = field(default_factory=list)
    matrix: dict[Intent, tuple[str, ...]] = field(default_factory=dict)
    agents: dict[str, AgentRouting] = field(default_factory=dict)
    default_model: str | None = None
    allowlist: frozenset[str] | None = None

    def build(self, org_id: str = "org_1") -> OrgRouting:
        by_provider: dict[ProviderId, list[ConnectionView]] = {}
        for c in sorted(self.connections, key=lambda c: (c.position, c.name)):
            by_provider.setdefault(c.provider, []).append(c)
        return OrgRouting(
            org_id=org_id,
            tier="pro",
            default_model=ModelRef.parse(self.default_model) if self.default_model else None,
            allowlist=self.allowlist,
            matrix={i: tuple(ModelRef.parse(r) for r in refs) for i, refs in self.matrix.items()},
            agents=self.agents,
            profiles={p: tuple(v) for p, v in by_provider.items()},
            custom={c.name: c for c in by_provider.get(ProviderId.OPENAI_COMPATIBLE, [])},
            explicit_order=frozenset(p for p, v in by_provider.items() if any(c.position for c in v)),
        )


def chat(text: str = "hi") -> ChatRequest:
    return ChatRequest(model="", messages=(Message(Role.USER, (TextPart(text),)),))


# Billing and usage seams as the router sees them: a usage sink and a preflight whose one hold
# remembers what it settled and how often it was released.


@dataclass
class Recorder:
    segments: list[UsageSegment] = field(default_factory=list)

    def record(self, item: UsageSegment) -> None:
        self.segments.append(item)


@dataclass
class FakeHold:
    settled: list[tuple[BillingSource, Usage]] = field(default_factory=list)
    prices: list[Price | None] = field(default_factory=list)
    released: int = 0

    async def settle(
        self,
        billing_source: BillingSource,
        usage: Usage,
        *,
        price: Price | None = None,
        audio_seconds: float = 0.0,
        characters: int = 0,
    ) -> int:
        self.settled.append((billing_source, usage))
        self.prices.append(price)
        return 0

    async def release(self) -> None:
        self.released += 1


@dataclass
class FakePreflight:
    requests: list[PreflightRequest] = field(default_factory=list)
    hold_: FakeHold = field(default_factory=FakeHold)

    async def hold(self, request: PreflightRequest) -> FakeHold:
        self.requests.append(request)
        return self.hold_
