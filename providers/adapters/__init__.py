"""Chat adapters, one per wire protocol."""

from __future__ import annotations

from providers.adapters.anthropic_messages import AnthropicMessagesAdapter
from providers.adapters.base import ChatAdapter
from providers.adapters.gemini_generate import GeminiGenerateAdapter
from providers.adapters.openai_chat import OpenAIChatAdapter
from providers.contract import WireProtocol
from providers.http import Timeouts
from providers.upstream_pool import UpstreamClients


def chat_adapters(
    clients: UpstreamClients, timeouts: Timeouts | None = None
) -> dict[WireProtocol, ChatAdapter]:
    """One adapter per chat wire protocol, sharing one upstream pool."""
    return {
        WireProtocol.OPENAI_CHAT: OpenAIChatAdapter(clients, timeouts),
        WireProtocol.ANTHROPIC_MESSAGES: AnthropicMessagesAdapter(clients, timeouts),
        WireProtocol.GEMINI_GENERATE: GeminiGenerateAdapter(clients, timeouts),
    }
