"""How a failure of the upstream transport becomes a `ProviderError`: a deadline that passed is
TIMEOUT, anything else NETWORK, and whether an open connection was closed before the reply
(which a retry on a new connection may fix). For every backend `providers.http` runs on:
Patchbay's own client, aiohttp's, and httpx with or without httpx-aiohttp."""

from __future__ import annotations

import aiohttp
import httpx

from providers.contract import ErrorClass
from providers.errors import ProviderError
from providers.h1_connection import H1Error


def timeout_error(provider: str, phase: str, budget: float) -> ProviderError:
    return ProviderError(
        ErrorClass.TIMEOUT, f"upstream timed out ({phase}, {budget:.3g}s)", provider=provider
    )


# Patchbay's own client's (the default backend), aiohttp's, and those httpx-aiohttp leaves
# unmapped when a caller's transport_factory uses it.
TRANSPORT_ERRORS = (H1Error, httpx.RequestError, aiohttp.ClientError)


# Failures of a connection that was open when the request went out (not of making one): the
# server closed it, or reset it, before replying.
_CLOSED_BEFORE_REPLY = (
    aiohttp.ServerDisconnectedError,
    aiohttp.ClientConnectionResetError,
    aiohttp.ClientOSError,
    httpx.RemoteProtocolError,
    httpx.ReadError,
    httpx.WriteError,
)
_NOT_OPEN = (aiohttp.ClientConnectorError,)


def transport_error(exc: Exception, provider: str, *, before_reply: bool = False) -> ProviderError:
    """Map a transport failure; the message names the failure kind, never headers.
    `before_reply`: it happened before the response's headers arrived."""
    if isinstance(exc, H1Error):
        return ProviderError(
            ErrorClass.NETWORK,
            f"upstream connection failed ({exc.kind})",
            provider=provider,
            closed_before_reply=before_reply and exc.closed_before_reply,
        )
    if isinstance(exc, httpx.TimeoutException) and _really_timed_out(exc):
        return ProviderError(
            ErrorClass.TIMEOUT, f"upstream timed out ({type(exc).__name__})", provider=provider
        )
    return ProviderError(
        ErrorClass.NETWORK,
        f"upstream connection failed ({type(exc).__name__})",
        provider=provider,
        closed_before_reply=before_reply and _closed(exc),
    )


def _closed(exc: Exception) -> bool:
    """The connection was open and the server closed or reset it. httpx-aiohttp maps aiohttp's
    errors to httpx's (a closed connection to `ConnectTimeout`); its cause says which it was."""
    cause = exc.__cause__
    failure = cause if isinstance(cause, aiohttp.ClientError) else exc
    return isinstance(failure, _CLOSED_BEFORE_REPLY) and not isinstance(failure, _NOT_OPEN)


def _really_timed_out(exc: httpx.TimeoutException) -> bool:
    # httpx-aiohttp maps every aiohttp connection error (refused, reset) to ConnectTimeout;
    # its cause says what actually happened.
    cause = exc.__cause__
    if cause is None or isinstance(cause, TimeoutError):
        return True
    return not type(cause).__module__.startswith("aiohttp")
