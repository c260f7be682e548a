"""Master key rotation: re-wrap every data key under the current master key, in batches.

The server keeps running: each batch is one short transaction, and a record is readable
before and after its batch because both the old and the new key stay configured until
rotation ends. A batch updates a record only if its wrapped key is still the one it read
(a concurrent `replace` wins). Records are visited in id order; the cursor and the running
count are saved with each batch in `vault_rotations`, so a crashed run resumes where it
stopped. A run ends with a full pass from the start that finds nothing left to re-wrap,
which also catches records written under an old key by servers that had not yet seen the
new one. Only one rotation should run at a time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from foundation.db import utcnow
from providers.vault.crypto import Binding, Envelope, MasterKey, rewrap
from providers.vault.errors import RotationIncomplete, VaultError
from providers.vault.keyring import KeySource
from providers.vault.tables import VaultRotation, VaultSecret

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RotationProgress:
    target_version: str
    rewrapped: int
    """Records re-wrapped by this run so far (including before a resume)."""
    remaining_at_start: int
    """Records not under the target version when this invocation started."""
    batches: int
    """Batches committed by this invocation."""


@dataclass(frozen=True, slots=True)
class RotationResult:
    target_version: str
    rewrapped: int
    batches: int
    resumed: bool


async def latest_rotation(session: AsyncSession) -> VaultRotation | None:
    return await session.scalar(
        select(VaultRotation).order_by(VaultRotation.started_at.desc(), VaultRotation.id.desc()).limit(1)
    )


async def rotate(
    sessions: async_sessionmaker[AsyncSession],
    keys: KeySource,
    *,
    batch_size: int = 100,
    progress: Callable[[RotationProgress], None] | None = None,
) -> RotationResult:
    """Re-wrap all records not under `keys.current()`; resumes an unfinished run toward the same version.

    `progress` is called after each committed batch; if it raises, the run stops there and a
    later call resumes it. Raises `RotationIncomplete` if some records could not be unwrapped.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    await asyncio.to_thread(keys.refresh)
    target = keys.current()
    run_id, cursor, done, resumed = await _start_run(sessions, target.version)
    async with sessions() as session:
        remaining = await session.scalar(
            select(func.count()).select_from(VaultSecret).where(VaultSecret.key_version != target.version)
        )
    log.info(
        "vault rotation started",
        extra={"fields": {"target_version": target.version, "remaining": remaining, "resumed": resumed}},
    )
    failed: set[str] = set()
    # A run is done after a pass that starts at the first id and finds nothing left to re-wrap
    # (records that failed authentication are reported, not retried).
    pass_from_start = cursor == ""
    pass_pending = 0
    batches = 0
    while True:
        async with sessions.begin() as session:
            rows = (
                await session.scalars(
                    select(VaultSecret)
                    .where(VaultSecret.key_version != target.version, VaultSecret.id > cursor)
                    .order_by(VaultSecret.id)
                    .limit(batch_size)
                )
            ).all()
            if not rows:
                if pass_from_start and pass_pending == 0:
                    await _finish_run(session, run_id)
                    break
                cursor, pass_from_start, pass_pending = "", True, 0
                await _save_cursor(session, run_id, cursor, 0)
                continue
            n = 0
            for row in rows:
                if row.id in failed:
                    continue
                pass_pending += 1
                if await _rewrap_row(session, row, keys, target, failed):
                    n += 1
            cursor = rows[-1].id
            await _save_cursor(session, run_id, cursor, n)
        done += n
        batches += 1
        if progress is not None:
            progress(RotationProgress(target.version, done, remaining or 0, batches))
    log.info(
        "vault rotation finished", extra={"fields": {"target_version": target.version, "rewrapped": done}}
    )
    if failed:
        raise RotationIncomplete(target.version, sorted(failed))
    return RotationResult(target.version, done, batches, resumed)


async def _start_run(sessions: async_sessionmaker[AsyncSession], target: str) -> tuple[str, str, int, bool]:
    async with sessions.begin() as session:
        unfinished = (
            await session.scalars(select(VaultRotation).where(VaultRotation.finished_at.is_(None)))
        ).all()
        for run in unfinished:
            if run.target_version == target:
                return run.id, run.cursor, run.rewrapped, True
            run.finished_at = utcnow()  # superseded by a rotation toward a newer key
        run = VaultRotation(target_version=target, cursor="", rewrapped=0)
        session.add(run)
        await session.flush()
        return run.id, "", 0, False


async def _rewrap_row(
    session: AsyncSession, row: VaultSecret, keys: KeySource, target: MasterKey, failed: set[str]
) -> bool:
    binding = Binding(row.org_id, row.owner_id, row.field)
    envelope = Envelope(row.ciphertext, row.nonce, row.wrapped_key, row.wrap_nonce, row.key_version)
    try:
        new = rewrap(envelope, binding, keys.get(row.key_version), target)
    except VaultError as exc:
        failed.add(row.id)
        log.error(
            "vault record could not be re-wrapped",
            extra={
                "fields": {
                    "secret_id": row.id,
                    "key_version": row.key_version,
                    "error_type": type(exc).__name__,
                }
            },
        )
        return False
    result = await session.execute(
        update(VaultSecret)
        .where(
            VaultSecret.id == row.id,
            VaultSecret.key_version == row.key_version,
            VaultSecret.wrapped_key == row.wrapped_key,
        )
        .values(
            wrapped_key=new.wrapped_key,
            wrap_nonce=new.wrap_nonce,
            key_version=new.key_version,
            rotated_at=utcnow(),
        )
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0) == 1)


async def _save_cursor(session: AsyncSession, run_id: str, cursor: str, rewrapped: int) -> None:
    await session.execute(
        update(VaultRotation)
        .where(VaultRotation.id == run_id)
        .values(cursor=cursor, rewrapped=VaultRotation.rewrapped + rewrapped, updated_at=utcnow())
    )


async def _finish_run(session: AsyncSession, run_id: str) -> None:
    await session.execute(
        update(VaultRotation).where(VaultRotation.id == run_id).values(finished_at=utcnow())
    )
