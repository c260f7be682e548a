"""The thin applier: carries out a `Plan` for one org, one item per transaction.

Each connection, order and agent chain is written in its own transaction through the
`Connections` and `Agents` services (so the vault, the audit and the config-change notices work
as for any other change); a failing item rolls back alone and is reported as refused. Items
whose database state already matches are `unchanged`, so a re-run changes nothing.

A dry run does the same work in one transaction that is rolled back at the end, each item in a
savepoint of its own (so a failing one is undone alone, as in a real run), and later items see
earlier ones (an order sees the connections just created) exactly as in a real run; it writes
no cooldown. Its report is the real run's. Keys are compared by fingerprint first and
decrypted only when the fingerprints agree.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from foundation.errors import RequestError
from providers.vault.errors import VaultError
from providers.vault.store import Vault
from routing.agents import Agents, merge_chains, normalize_ref
from routing.config_versions import bump
from routing.connections import KEY_FIELD, Connections
from routing.cooldown import FRESH, ProfileState
from routing.cooldown_carry import carry_over
from routing.cooldown_store import CooldownStore
from routing.declared_models import declared_models
from routing.errors import RoutingError
from routing.tables import Agent, Connection, OrgAISettings
from server.openclaw.items import (
    ChainPlan,
    ConnectionPlan,
    CooldownPlan,
    OrderPlan,
    Outcome,
    Plan,
    Status,
    in_report_order,
)
from server.vault_keys import VaultKeyStore

ACTOR = "openclaw-import"


@dataclass
class Applier:
    sessions: async_sessionmaker[AsyncSession]
    connections: Connections
    vault: Vault
    """For comparing keys; a dry run passes one whose decrypt audits go nowhere."""
    cooldowns: CooldownStore | None
    """None: no store outlives this process (no Redis), so windows are reported, not carried."""
    org_id: str
    dry_run: bool = False

    async def run(self, plan: Plan) -> list[Outcome]:
        failed: set[str] = set()
        out: list[Outcome] = []
        async with self.sessions() as shared:
            if self.dry_run:
                # A write first, so the transaction is open before the first SAVEPOINT (SQLite's
                # driver begins one lazily, and a SAVEPOINT outside it would commit on release).
                await bump(shared, self.org_id)
            for conn in plan.connections:
                outcome = await self._item(
                    shared, conn.item, conn.profile_id, partial(self._connection, p=conn)
                )
                if outcome.status is Status.REFUSED:
                    failed.add(conn.profile_id)
                out.append(outcome)
            for order in plan.orders:
                work = partial(self._order, p=order, failed=failed)
                out.append(await self._item(shared, order.item, order.provider.value, work))
            for chain in plan.chains:
                out.append(
                    await self._item(
                        shared, chain.item, f"agent {chain.agent}", partial(self._chain, p=chain)
                    )
                )
            if self.dry_run:
                await shared.rollback()
        for cooldown in plan.cooldowns:
            out.append(await self._cooldown(cooldown, failed))
        return in_report_order(out + plan.left_out)

    async def _item(
        self, shared: AsyncSession, item: str, target: str, work: Callable[[AsyncSession], Awaitable[Outcome]]
    ) -> Outcome:
        try:
            if self.dry_run:
                async with shared.begin_nested():
                    return await work(shared)
            async with self.sessions() as session:
                outcome = await work(session)
                await session.commit()
                return outcome
        except (RequestError, RoutingError, VaultError) as exc:
            return Outcome(item, Status.REFUSED, target=target, reason=str(exc))

    async def _connection(self, s: AsyncSession, p: ConnectionPlan) -> Outcome:
        row = await s.scalar(
            select(Connection).where(
                Connection.org_id == self.org_id,
                Connection.provider == p.provider.value,
                Connection.name == p.name,
            )
        )
        models = list(p.models) if p.models is not None else None
        if row is None:
            await self.connections.create(
                s,
                self.org_id,
                provider=p.provider.value,
                name=p.name,
                base_url=p.base_url,
                models=models,
                key=p.key,
            )
            row = await self.connections.get(s, self.org_id, p.profile_id)
            row.credential_kind = p.kind.value
            actions = ["created connection"] + (["stored key (encrypted)"] if p.key else [])
            if models:
                actions.append(f"declared {len(models)} model(s)")
            return Outcome(p.item, Status.CREATED, p.profile_id, tuple(actions) + p.notes)
        actions = []
        if p.base_url is not None and row.base_url != p.base_url.rstrip("/"):
            await self.connections.update(s, self.org_id, p.profile_id, base_url=p.base_url)
            actions.append("set base URL")
        if models is not None and _model_caps(row.models) != _model_caps(declared_models(models)):
            await self.connections.update(s, self.org_id, p.profile_id, models=models)
            actions.append(f"declared {len(models)} model(s)")
        if p.key is not None and not await self._same_key(s, row, p):
            await self.connections.replace_key(s, self.org_id, p.profile_id, p.key)
            actions.append("replaced key (encrypted)")
        if row.credential_kind != p.kind.value:
            row.credential_kind = p.kind.value
            actions.append(f"credential kind set to {p.kind.value}")
        status = Status.UPDATED if actions else Status.UNCHANGED
        return Outcome(p.item, status, p.profile_id, tuple(actions) + (p.notes if actions else ()))

    async def _same_key(self, s: AsyncSession, row: Connection, p: ConnectionPlan) -> bool:
        assert p.key is not None
        if row.secret_id is None or row.key_fingerprint != p.key.fingerprint:
            return False
        return await VaultKeyStore(self.vault, ACTOR).matches(
            s,
            secret_id=row.secret_id,
            org_id=self.org_id,
            owner_id=row.id,
            field=KEY_FIELD,
            plaintext=p.key.expose(),
        )

    async def _order(self, s: AsyncSession, p: OrderPlan, failed: set[str]) -> Outcome:
        rows = list(
            await s.scalars(
                select(Connection)
                .where(Connection.org_id == self.org_id, Connection.provider == p.provider.value)
                .order_by(Connection.position, Connection.name)
            )
        )
        present = {r.profile_id: r for r in rows}
        wanted = [pid for pid in p.profiles if pid in present]
        notes = list(p.notes) + [
            f"{pid} dropped: not imported" for pid in p.profiles if pid not in present or pid in failed
        ]
        wanted += [r.profile_id for r in rows if r.profile_id not in wanted]
        settings = await s.get(OrgAISettings, self.org_id)
        explicit = settings is not None and p.provider.value in (settings.profile_order_explicit or [])
        if explicit and all(present[pid].position == i for i, pid in enumerate(wanted)):
            return Outcome(p.item, Status.UNCHANGED, p.provider.value)
        await self.connections.reorder(s, self.org_id, p.provider.value, wanted)
        return Outcome(p.item, Status.UPDATED, p.provider.value, (f"order {', '.join(wanted)}", *notes))

    async def _chain(self, s: AsyncSession, p: ChainPlan) -> Outcome:
        agents = Agents(actor=ACTOR)
        row = await s.scalar(select(Agent).where(Agent.org_id == self.org_id, Agent.name == p.agent))
        target = f"agent {p.agent}"
        described = tuple(f"{intent}: {' > '.join(refs)}" for intent, refs in p.chains.items())
        if row is None:
            await agents.create(s, self.org_id, p.agent, chains=p.chains, default_model=p.default_model)
            return Outcome(p.item, Status.CREATED, target, described + p.notes)
        if merge_chains(row.chains, p.chains) == (row.chains or {}) and row.default_model == normalize_ref(
            p.default_model
        ):
            return Outcome(p.item, Status.UNCHANGED, target)
        await agents.update(s, self.org_id, p.agent, chains=p.chains, default_model=p.default_model)
        return Outcome(p.item, Status.UPDATED, target, described + p.notes)

    async def _cooldown(self, p: CooldownPlan, failed: set[str]) -> Outcome:
        if p.profile_id in failed:
            return Outcome(p.item, Status.SKIPPED, p.profile_id, reason="its connection was not imported")
        if self.cooldowns is None:
            return Outcome(
                p.item,
                Status.SKIPPED,
                p.profile_id,
                reason="cooldowns live in Redis (PATCHBAY_REDIS_URL); without it they would end with this command",
            )
        current = (await self.cooldowns.get_many(self.org_id, [p.profile_id])).get(p.profile_id, FRESH)
        if carry_over(current, p.state) == current:
            return Outcome(p.item, Status.UNCHANGED, p.profile_id)
        if not self.dry_run:
            await self.cooldowns.carry_over(self.org_id, p.profile_id, p.state)
        return Outcome(p.item, Status.UPDATED, p.profile_id, windows(p.state) + p.notes)


def windows(state: ProfileState) -> tuple[str, ...]:
    out = []
    if state.cooldown_until is not None:
        scope = f", model {state.cooldown_model}" if state.cooldown_model else ""
        out.append(f"cooldown until {_iso(state.cooldown_until)} ({state.cooldown_reason}{scope})")
    if state.disabled_until is not None:
        out.append(f"disabled until {_iso(state.disabled_until)} ({state.disabled_reason})")
    return tuple(out)


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat()


def _model_caps(models: Sequence[dict[str, object]] | None) -> list[tuple[object, object]]:
    return [(m.get("id"), m.get("capabilities")) for m in models or []]


def refused(outcomes: Sequence[Outcome]) -> bool:
    return any(o.status is Status.REFUSED for o in outcomes)
