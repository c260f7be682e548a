"""The start-up check of a multi-replica deployment: refuse a configuration that would diverge.

`PATCHBAY_REPLICAS` says how many `patchbay serve` processes (each with its workers) serve one
deployment. Above 1, every replica must see the same state whichever one a client reaches
(docs/operations.md#scaling-out): one PostgreSQL, one Redis, and the same secrets. Each rule
here is a setting that, left at its single-process default, would make the replicas disagree
without an error anywhere: a SQLite file per replica, cooldowns and rate limits per process,
realtime tokens signed with a random secret per process, a vault key or an admin token
generated into each replica's own data directory. `replica_problems` is pure; `patchbay serve`
prints what it returns and exits 3 before touching the database.
"""

from __future__ import annotations

from server.settings import Settings


def replica_problems(settings: Settings) -> list[str]:
    """What keeps `settings` from serving as one of several replicas, each saying how to fix it;
    empty for a single replica (`replicas` 1) or a configuration every replica can share."""
    if settings.replicas <= 1:
        return []
    several = f"PATCHBAY_REPLICAS={settings.replicas}"
    problems: list[str] = []
    if not settings.resolved_database_url.startswith("postgresql"):
        problems.append(
            f"{several} on SQLite: each replica would keep its own database. Set PATCHBAY_DATABASE_URL "
            "to the PostgreSQL every replica shares (postgresql://user@host/db)"
        )
    if settings.redis_url is None:
        problems.append(
            f"{several} without PATCHBAY_REDIS_URL: cooldowns, rate limits and realtime session limits "
            "would be counted per replica. Set PATCHBAY_REDIS_URL to the Redis every replica shares"
        )
    if settings.voice_token_secret is None:
        problems.append(
            f"{several} without PATCHBAY_VOICE_TOKEN_SECRET: a realtime token minted by one replica would "
            "be refused by the others. Set the same PATCHBAY_VOICE_TOKEN_SECRET on every replica"
        )
    if settings.master_key is None and settings.master_key_file is None:
        problems.append(
            f"{several} without PATCHBAY_MASTER_KEY: each replica would generate its own vault key and "
            "could not read the others' secrets. Set the same PATCHBAY_MASTER_KEY (or "
            "PATCHBAY_MASTER_KEY_FILE on a shared volume) on every replica"
        )
    if settings.admin_api and settings.admin_token is None:
        problems.append(
            f"{several} without PATCHBAY_ADMIN_TOKEN: each replica would generate its own operator token. "
            "Set the same PATCHBAY_ADMIN_TOKEN on every replica"
        )
    return problems
