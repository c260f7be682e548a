"""`patchbay vault ...`: master key status and rotation.

Exit codes follow `server.cli`: 0 success; 1 the rotation could not finish (records that fail
authentication, or nothing to rotate to); 3 not ready (database unreachable or not migrated,
key configuration unreadable, records under a missing or wrong master key).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import click

from foundation.audit import MemoryAudit
from providers.vault.errors import KeyConfigError, MissingKeyError, RotationIncomplete, WrongKeyError
from providers.vault.keyring import FileKeys, StaticKeys
from providers.vault.rotation import RotationProgress, RotationResult
from providers.vault.store import Vault, VaultStatus
from server.cli_common import (
    EXIT_FAILED,
    EXIT_NOT_READY,
    emit,
    fail,
    json_option,
    load_settings,
    run_with_database,
)
from server.db import Database
from server.settings import Settings
from server.vault_keys import key_source


@click.group("vault")
def vault_group() -> None:
    """The credential vault: which master key versions hold secrets, and key rotation."""


def _keys(settings: Settings, as_json: bool) -> StaticKeys | FileKeys:
    # Never generate a key here: a missing key file is something to report, not to paper over.
    try:
        return key_source(settings, create=False)
    except KeyConfigError as exc:
        fail(str(exc), EXIT_NOT_READY, as_json=as_json, kind="key_config")


@vault_group.command("status")
@json_option
def status(as_json: bool) -> None:
    """Show how many secrets each master key version holds.

    An old version with no records can be removed from PATCHBAY_MASTER_KEY or the key file.
    Exits 3 when records are held under a version that is not configured.
    """
    settings = load_settings()
    keys = _keys(settings, as_json)

    async def run(db: Database) -> VaultStatus:
        async with db.session() as session:
            return await Vault(keys, db.sessions, MemoryAudit()).status(session)

    result = run_with_database(run, as_json=as_json, settings=settings)
    emit(as_json, {"keys": keys.description, **result.to_dict()}, _status_text(result, keys.description))
    if result.missing_versions:
        raise SystemExit(EXIT_NOT_READY)


@dataclass(frozen=True, slots=True)
class _Rotated:
    added_version: str | None
    result: RotationResult
    status: VaultStatus


@vault_group.command("rotate")
@click.option(
    "--batch-size",
    type=click.IntRange(1, 10_000),
    default=100,
    show_default=True,
    help="Records per transaction.",
)
@json_option
def rotate(batch_size: int, as_json: bool) -> None:
    """Re-wrap every secret's data key under a new master key version, with the server running.

    With a key file (the default), a new version is generated, written first in the file
    (mode 0600), and every record is re-wrapped under it; back the file up afterwards. With
    PATCHBAY_MASTER_KEY, put the new key first in the variable on every server (keeping the
    old ones), restart them, then run this command. An interrupted run resumes where it
    stopped when run again.
    """
    settings = load_settings()
    keys = _keys(settings, as_json)
    if not keys.versions():
        fail(
            f"no vault master key is configured ({keys.description}); set PATCHBAY_MASTER_KEY or "
            "PATCHBAY_MASTER_KEY_FILE, or start the server once to generate the key file",
            EXIT_NOT_READY,
            as_json=as_json,
            kind="key_config",
        )

    def report(p: RotationProgress) -> None:
        if not as_json:
            click.echo(
                f"[{p.rewrapped}/{p.remaining_at_start}] re-wrapped under {p.target_version}", err=True
            )

    async def run(db: Database) -> _Rotated:
        vault = Vault(keys, db.sessions, MemoryAudit())
        try:
            async with db.session() as session:
                await vault.check_keys(session)
                before = await vault.status(session)
        except (MissingKeyError, WrongKeyError, KeyConfigError) as exc:
            fail(str(exc), EXIT_NOT_READY, as_json=as_json, kind="key_config")
        added = None
        if not _has_work(before):
            if not isinstance(keys, FileKeys):
                fail(
                    f"every record is already under the current key {before.current_version or '(none)'}; to rotate, "
                    "put a new key first in PATCHBAY_MASTER_KEY (keeping the old ones), restart the servers, "
                    "then run this again",
                    EXIT_FAILED,
                    as_json=as_json,
                    kind="nothing_to_rotate",
                )
            added = (await asyncio.to_thread(keys.add_version)).version
            if not as_json:
                click.echo(f"added master key {added} to {keys.path}; back this file up now", err=True)
        try:
            result = await vault.rotate(batch_size=batch_size, progress=report)
        except RotationIncomplete as exc:
            fail(str(exc), EXIT_FAILED, as_json=as_json, kind="rotation_incomplete")
        async with db.session() as session:
            after = await vault.status(session)
        return _Rotated(added, result, after)

    done = run_with_database(run, as_json=as_json, settings=settings)
    payload: dict[str, Any] = {
        "added_version": done.added_version,
        "target_version": done.result.target_version,
        "rewrapped": done.result.rewrapped,
        "batches": done.result.batches,
        "resumed": done.result.resumed,
        "status": done.status.to_dict(),
    }
    resumed = " (resumed an interrupted rotation)" if done.result.resumed else ""
    text = f"re-wrapped {done.result.rewrapped} record(s) under {done.result.target_version}{resumed}\n"
    emit(as_json, payload, text + _status_text(done.status, keys.description))


def _has_work(status: VaultStatus) -> bool:
    """Records still under an old key, or an interrupted run toward the current key."""
    rot = status.last_rotation
    interrupted = rot is not None and rot.finished_at is None and rot.target_version == status.current_version
    return status.pending > 0 or interrupted


def _status_text(status: VaultStatus, description: str) -> str:
    lines = [
        f"current key: {status.current_version or 'none configured'} ({description})",
        f"configured versions: {', '.join(status.configured_versions) or 'none'}",
    ]
    lines += [f"  {v}: {n} record(s)" for v, n in status.records_by_version.items()] or ["  no records"]
    if status.pending:
        lines.append(
            f"not yet under the current key: {status.pending} record(s); run `patchbay vault rotate`"
        )
    if status.removable_versions:
        lines.append(f"no records use {', '.join(status.removable_versions)}: safe to remove after a backup")
    if status.missing_versions:
        lines.append(
            f"MISSING keys for {', '.join(status.missing_versions)}: those secrets cannot be decrypted"
        )
    rot = status.last_rotation
    if rot is not None:
        state = (
            f"finished {rot.finished_at.isoformat()}"
            if rot.finished_at
            else "not finished (run rotate to resume)"
        )
        lines.append(f"last rotation: to {rot.target_version}, {rot.rewrapped} re-wrapped, {state}")
    return "\n".join(lines)
