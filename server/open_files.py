"""The process's open-file limit: raised to what the system allows before the server starts.

Every client connection and every upstream call holds a file descriptor. Many systems start a
service with a soft limit of 1,024 (systemd's default) under a far higher hard limit, which
would cap the server long before `PATCHBAY_HTTP_MAX_CONNECTIONS` and
`PATCHBAY_UPSTREAM_CONNECTIONS`, as `accept` and `connect` failures. `serve` raises the soft
limit to the hard one (workers inherit it), and says so when even that is below what the
settings may open.
"""

from __future__ import annotations

import logging
import resource

from server.settings import Settings

log = logging.getLogger("patchbay.server")

CEILING = 1 << 20
"""Taken when the hard limit is unlimited: what Linux allows a process by default (`nr_open`)."""


def needed(settings: Settings) -> int:
    """Descriptors the settings may hold at once: client connections, the calls to one upstream
    origin, and a margin for the database, Redis, logs and the listening sockets."""
    return (settings.http_max_connections or 0) + settings.upstream_connections + 256


def raise_open_file_limit(settings: Settings) -> int:
    """Raise the soft limit to the hard one; returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = CEILING if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open-file limit", extra={"fields": {"error": str(exc)}})
    want = needed(settings)
    if soft != resource.RLIM_INFINITY and soft < want:
        log.warning(
            "the open-file limit is below what the settings may open: raise it (ulimit -n, or "
            "LimitNOFILE= under systemd) or lower PATCHBAY_HTTP_MAX_CONNECTIONS / "
            "PATCHBAY_UPSTREAM_CONNECTIONS",
            extra={"fields": {"limit": soft, "needed": want}},
        )
    return soft
