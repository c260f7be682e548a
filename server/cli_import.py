"""`patchbay import openclaw`: bring an OpenClaw deployment's keys, custom providers, chains,
order and cooldowns into one org (docs/openclaw.md).

The files are read and planned without I/O (`server.openclaw.plan`); the plan is applied one
item per transaction. Exit codes: 0 done, 1 a file is unusable or the org does not exist (nothing
written), 2 usage, 3 database not ready, 4 some items were refused (the rest were imported).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from foundation.audit import MemoryAudit
from foundation.db import utcnow
from providers.vault.store import Vault
from routing.connections import Connections
from server import accounts
from server.cli_common import (
    EXIT_FAILED,
    EXIT_PARTIAL,
    cli_overrides,
    emit,
    fail,
    json_option,
    load_settings,
    run_with_services,
)
from server.openclaw.apply import ACTOR, Applier, refused
from server.openclaw.items import Outcome, Status
from server.openclaw.options import DEFAULT_ALLOW, Inputs, Options
from server.openclaw.plan import build_plan
from server.openclaw.source import FileError, load_document, normalize_provider
from server.services import Services

_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


@click.group("import")
def import_group() -> None:
    """Import configuration from other systems."""


@import_group.command("openclaw")
@click.option("--org", "org_ref", required=True, help="Org id or name to import into.")
@click.option(
    "--profiles",
    "profiles_file",
    type=_FILE,
    required=True,
    help="auth-profiles.json (the store, or its secrets file).",
)
@click.option(
    "--state",
    "state_file",
    type=_FILE,
    help="auth-state.json (order, lastGood, usageStats) of the split store.",
)
@click.option(
    "--config",
    "config_file",
    type=_FILE,
    help="openclaw.json (custom providers, auth modes and order, agent chains).",
)
@click.option(
    "--allow",
    "allow",
    multiple=True,
    metavar="PROVIDER",
    help="Import only these providers (repeatable; Patchbay ids or custom provider ids). Default: every provider Patchbay supports.",
)
@click.option(
    "--resolve-env", is_flag=True, help="Read keys given as ${VAR} or env SecretRefs from this environment."
)
@click.option("--dry-run", is_flag=True, help="Report exactly what would be done, and write nothing.")
@json_option
def openclaw(
    org_ref: str,
    profiles_file: Path,
    state_file: Path | None,
    config_file: Path | None,
    allow: Sequence[str],
    resolve_env: bool,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Import OpenClaw auth profiles, custom providers, fallback chains, order and cooldowns.

    `api_key` and `token` profiles become connections with their keys in the vault (the profile id
    `provider:name` kept); models.providers entries become connections with base URL, protocol and
    declared models; agents' primary + fallbacks become agent chains; `order` the connection order;
    active cooldown and disable windows carry over (with PATCHBAY_REDIS_URL). Every item is
    reported; a re-run changes nothing. Keys are never printed. See docs/openclaw.md.

    Exit codes: 0 done, 1 a file is not JSON or the org does not exist (nothing written),
    2 usage, 3 database not ready, 4 some items were refused (the rest were imported).
    """
    try:
        inputs = Inputs(
            profiles=_read(profiles_file),
            state=_read(state_file) if state_file else None,
            config=_read(config_file) if config_file else None,
        )
    except FileError as exc:
        fail(f"{exc}; nothing was imported", EXIT_FAILED, as_json=as_json, kind="invalid_file")
    now = (cli_overrides().now or utcnow)()
    options = Options(
        allow=frozenset(normalize_provider(a) for a in allow) or DEFAULT_ALLOW,
        resolve_env=resolve_env,
        environ=dict(os.environ) if resolve_env else {},
        now_ms=int(now.timestamp() * 1000),
    )
    plan = build_plan(inputs, options)
    settings = load_settings()

    async def run(services: Services) -> list[Outcome]:
        async with services.db.session() as session:
            org_id = (await accounts.get_org(session, org_ref)).id
        vault = Vault(services.vault.keys, services.db.sessions, MemoryAudit()) if dry_run else services.vault
        connections = Connections(vault, services.guard, actor=ACTOR, env_references=settings.env_references)
        cooldowns = services.gateway.cooldowns if settings.redis_url else None
        applier = Applier(services.db.sessions, connections, vault, cooldowns, org_id, dry_run=dry_run)
        return await applier.run(plan)

    outcomes = run_with_services(run, as_json=as_json, settings=settings)
    emit(as_json, _payload(outcomes, dry_run), _text(outcomes, dry_run))
    if refused(outcomes):
        raise SystemExit(EXIT_PARTIAL)


def _read(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise FileError(f"{path.name} is not UTF-8 text") from None
    return load_document(text, name=path.name)


def _counts(outcomes: Sequence[Outcome]) -> dict[str, int]:
    found = Counter(o.status.value for o in outcomes)
    return {s.value: found.get(s.value, 0) for s in Status}


def _payload(outcomes: Sequence[Outcome], dry_run: bool) -> dict[str, Any]:
    return {"dry_run": dry_run, "items": [o.as_json() for o in outcomes], "counts": _counts(outcomes)}


def _text(outcomes: Sequence[Outcome], dry_run: bool) -> str:
    lines = [o.as_text() for o in outcomes]
    lines.append(", ".join(f"{n} {status}" for status, n in _counts(outcomes).items()))
    if dry_run:
        lines.append("dry run: nothing was written")
    return "\n".join(lines)
