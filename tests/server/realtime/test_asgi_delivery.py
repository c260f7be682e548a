"""Voice sockets read through ASGI `receive`, as under a server that does not offer direct delivery.

`patchbay serve` hands voice messages straight from its WebSocket protocol to the session
(`server.websocket_direct`), and the rest of this package runs that way. These tests, taken
from the endpoint and Twilio suites, run again on uvicorn's own protocol, where
`MessageFeed` reads through `receive`.
"""

from __future__ import annotations

import pytest

from tests.server.realtime.test_endpoint import (
    test_bad_input_gets_an_error_event,
    test_oversized_and_binary_frames,
    test_session_expires_with_an_error_event,
    test_spoken_turn_and_per_segment_usage,
)
from tests.server.realtime.test_twilio import (
    dial,
    test_a_stop_message_ends_the_call,
    test_garbage_is_skipped_and_the_call_goes_on,
    webhook,
)

__all__ = [
    "dial",
    "test_a_stop_message_ends_the_call",
    "test_bad_input_gets_an_error_event",
    "test_garbage_is_skipped_and_the_call_goes_on",
    "test_oversized_and_binary_frames",
    "test_session_expires_with_an_error_event",
    "test_spoken_turn_and_per_segment_usage",
    "webhook",
]


@pytest.fixture
def ws_protocol() -> str:
    return "websockets-sansio"
