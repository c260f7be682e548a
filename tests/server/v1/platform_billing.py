"""A real `patchbay serve` process charging platform-paid chat, for the billing acceptance tests.

The org (tier `pro`, 15% markup) has one connection, `openai:plat`, to the OpenAI emulator,
whose key is an environment reference: the server reads it from its own environment, so the
connection bills to the platform (`CredentialSource.ENV_REFERENCE`) at its declared price.
The server runs as a child process (`python -c "from server.cli import main; main()" serve`,
the worktree's code first on its path), so a test can SIGKILL it and start it again on the
same database. Each client request carries its own `x-request-id`, which the billing
preflight puts in the idempotency keys of its ledger entries (`pf:<request id>:llm:...`):
that is how a test finds the entries of each response.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
from sqlalchemy import select, text, update

from billing.ledger import Ledger
from billing.ledger_lease import LeasedSettle
from billing.ledger_query import list_entries
from billing.ledger_tables import ACCOUNTS, EntryKind
from billing.ledger_types import Entry
from billing.money import parse_usd
from billing.prices import Price
from billing.tables import UsageRecord
from foundation.tiers import Tier
from server import accounts
from server.db import Database
from server.services import Services
from server.settings import Settings
from tests.emulators.harness import free_port
from tests.server.v1.conftest import TEST_MASTER_KEY

ROOT = Path(__file__).resolve().parents[3]
KEY_VARIABLE = "PLATFORM_OPENAI_KEY"
PLATFORM_KEY = "sk-platform-CANARY-0123456789abcdef"
MODEL = "openai/gpt-4o-mini"
PRICE = Price(input=1_000_000, output=2_000_000)
"""Declared on the connection: 1 USD per 1M input tokens, 2 USD per 1M output tokens."""
MAX_TOKENS = 1_000


def server_env(db_url: str, data_dir: Path, hold_ttl_seconds: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PATCHBAY_")}
    env.update(
        {
            "PYTHONPATH": str(ROOT),
            "PATCHBAY_DATA_DIR": str(data_dir),
            "PATCHBAY_DATABASE_URL": db_url,
            "PATCHBAY_WORKERS": "1",
            "PATCHBAY_LOG_LEVEL": "WARNING",
            "PATCHBAY_MASTER_KEY": TEST_MASTER_KEY,
            "PATCHBAY_ALLOW_PRIVATE_BASE_URLS": "true",
            "PATCHBAY_ALLOW_PLAIN_HTTP_BASE_URLS": "true",
            "PATCHBAY_ENV_REFERENCE_ALLOW": KEY_VARIABLE,
            "PATCHBAY_API_KEY_RATE_LIMIT": "off",
            "PATCHBAY_BILLING_HOLD_TTL_SECONDS": str(hold_ttl_seconds),
            KEY_VARIABLE: PLATFORM_KEY,
        }
    )
    return env


async def seed(db: Database, data_dir: Path, upstream_url: str) -> tuple[str, str]:
    """The org with its platform-paid connection; returns (org id, API key)."""
    settings = Settings(
        data_dir=data_dir,
        database_url=db.url,
        master_key=TEST_MASTER_KEY,
        allow_private_base_urls=True,
        allow_plain_http_base_urls=True,
        env_reference_allow=KEY_VARIABLE,
    )
    services = Services.build(settings, db, admin_api=False)
    async with db.session() as s:
        org = await accounts.create_org(s, "Acme", Tier.PRO)
        await services.connections().create(
            s,
            org.id,
            provider="openai",
            name="plat",
            base_url=upstream_url,
            models=["gpt-4o-mini"],
            env_reference=KEY_VARIABLE,
            prices={"gpt-4o-mini": PRICE},
        )
        key = await accounts.create_api_key(s, org.id, name="burst")
    return org.id, key.key


async def cli(env: Mapping[str, str], *args: str) -> dict[str, Any]:
    """`patchbay ARGS --json` in a child process; its JSON output."""
    done = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from server.cli import main; main()",
        *args,
        "--json",
        cwd=ROOT,
        env=dict(env),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await done.communicate()
    assert done.returncode == 0, err.decode()
    parsed: dict[str, Any] = orjson.loads(out)
    return parsed


class Served:
    """`patchbay serve` as a child process on a free port."""

    def __init__(
        self, env: Mapping[str, str], log: Path, code: str = "from server.cli import main; main()"
    ) -> None:
        """`code`: the Python the child runs, `serve` its one argument (another app factory, say)."""
        self._code = code
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._env = {**env, "PATCHBAY_PORT": str(self.port)}
        self._log = log
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        with self._log.open("ab") as log:  # a file, not a pipe nobody reads: a full pipe blocks the server
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                self._code,
                "serve",
                cwd=ROOT,
                env=self._env,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=log,
            )
        async with httpx.AsyncClient(base_url=self.url, timeout=2) as http:
            for _ in range(600):
                assert self.proc.returncode is None, self._log.read_text()[-4000:]
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get("/readyz")).status_code == 200:
                        return
                await asyncio.sleep(0.1)  # polling for readiness, bounded (60 s); nothing else waits on time
        raise AssertionError(
            "patchbay serve did not get ready within 60 s:\n" + self._log.read_text()[-4000:]
        )

    async def kill(self) -> None:
        """SIGKILL: no shutdown code runs, whatever the server was doing."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        assert await self.proc.wait() == -signal.SIGKILL

    async def stop(self) -> None:
        """SIGTERM: a clean shutdown (the buffered writers flush)."""
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(self.proc.wait(), 30)

    async def __aenter__(self) -> Served:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


@dataclass
class Outcome:
    """What one client got. `cost` is the micro-USD the response said it was charged, and is
    set only for a response received complete (a 200 body, or a stream through `[DONE]`)."""

    request_id: str
    stream: bool
    status: int | None = None
    """None: no response head at all (the connection was lost first)."""
    code: str | None = None
    cost: int | None = None
    finished: bool = False
    """A stream delivered its last content chunk (`finish_reason`)."""

    @property
    def complete(self) -> bool:
        return self.cost is not None


def chat_body(stream: bool, model: str = MODEL) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": model,
        "max_tokens": MAX_TOKENS,
        "messages": [{"role": "user", "content": "Say hello."}],
    }
    if stream:
        body |= {"stream": True, "stream_options": {"include_usage": True}}
    return body


async def chat(
    http: httpx.AsyncClient,
    request_id: str,
    *,
    stream: bool,
    on_finish: Callable[[], None] | None = None,
    model: str = MODEL,
) -> Outcome:
    """One platform-paid /v1/chat/completions call; a lost connection is an outcome, not an error."""
    out = Outcome(request_id, stream)
    headers = {"x-request-id": request_id}
    try:
        if not stream:
            response = await http.post("/v1/chat/completions", json=chat_body(False, model), headers=headers)
            out.status = response.status_code
            if response.status_code == 200:
                assert response.json()["choices"][0]["message"]["content"]
                out.cost = parse_usd(response.headers["x-patchbay-cost"])
            else:
                out.code = error_code(response.content)
            return out
        async with http.stream(
            "POST", "/v1/chat/completions", json=chat_body(True, model), headers=headers
        ) as response:
            out.status = response.status_code
            if response.status_code != 200:
                out.code = error_code(await response.aread())
                return out
            cost: int | None = None
            async for line in response.aiter_lines():
                if line.startswith(": x-patchbay-cost "):
                    cost = parse_usd(line.split()[-1])
                elif line == "data: [DONE]":
                    assert cost is not None, "the cost comes before [DONE]"
                    out.cost = cost
                elif line.startswith("data: ") and b'"finish_reason":"' in line.encode():
                    out.finished = True
                    if on_finish is not None:
                        on_finish()
    except httpx.TransportError:
        pass  # the server went away mid-response: not received complete
    return out


async def no_open_holds(url: str, org_id: str, admin_token: str, *, within: float = 90.0) -> None:
    """Poll the admin balance (bounded) until the org has no open hold and nothing held."""
    async with httpx.AsyncClient(
        base_url=url, headers={"authorization": f"Bearer {admin_token}"}, timeout=30
    ) as admin:
        deadline = time.monotonic() + within
        while True:
            balance = (await admin.get(f"/admin/v1/orgs/{org_id}/billing/balance")).json()
            if not balance["holds"] and balance["held_micro_usd"] == 0:
                return
            assert time.monotonic() < deadline, f"holds still open: {balance['holds']}"
            await asyncio.sleep(0.5)  # polling the sweeper's effect, bounded


def error_code(body: bytes) -> str | None:
    """The OpenAI-format error's `code`; None for any other body."""
    try:
        code = orjson.loads(body)["error"]["code"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None
    return str(code) if code is not None else None


def request_of(entry: Entry) -> str | None:
    """The client's request id in a preflight entry's key (`pf:<request id>:llm:<attempt>...`)."""
    parts = entry.idempotency_key.split(":")
    return parts[1] if parts[0] == "pf" else None


async def entries_by_request(db: Database, org_id: str) -> tuple[list[Entry], dict[str, list[Entry]]]:
    async with db.sessions() as session:
        entries = await list_entries(session, org_id)
    by_request: dict[str, list[Entry]] = {}
    for entry in entries:
        rid = request_of(entry)
        if rid is not None:
            by_request.setdefault(rid, []).append(entry)
    return entries, by_request


def kinds(entries: list[Entry]) -> list[EntryKind]:
    return sorted((e.kind for e in entries), key=lambda k: k.value)


async def replay_every_key(ledger: Ledger, entries: list[Entry]) -> None:
    """Call every entry's operation again with its key: each must come back `replayed`."""
    for e in entries:
        again: Entry
        if e.kind is EntryKind.GRANT:
            again = await ledger.grant(e.org_id, e.amount, e.idempotency_key)
        elif e.kind is EntryKind.HOLD:
            again = await ledger.hold(e.org_id, e.amount, e.idempotency_key)
        elif e.kind is EntryKind.SETTLE and e.hold_id is not None:
            requested = e.amount + e.shortfall
            again = await ledger.settle(e.hold_id, requested, e.idempotency_key, org_id=e.org_id)
        elif e.kind is EntryKind.SETTLE and "lease" in e.details:  # journaled, then written by a drain
            settle = LeasedSettle(
                e.org_id, str(e.details["lease"]), e.idempotency_key, e.amount, e.details, e.created_at
            )
            assert await ledger.settle_leased(e.org_id, settle.lease_id, [settle]) == [], e
            continue
        elif e.kind is EntryKind.RELEASE and e.hold_id is not None:
            again = await ledger.release(e.hold_id, e.idempotency_key, org_id=e.org_id)
        else:
            raise AssertionError(f"no replay for a {e.kind} entry here")
        assert again.replayed and again.id == e.id, e


async def usage_by_request(db: Database, org_id: str) -> Counter[str | None]:
    """How many usage rows each request id of the org has."""
    async with db.sessions() as session:
        ids = await session.scalars(select(UsageRecord.request_id).where(UsageRecord.org_id == org_id))
        return Counter(ids.all())


@contextlib.asynccontextmanager
async def ledger_locked(db: Database, org_id: str, *, usage: bool = False) -> AsyncIterator[None]:
    """Hold the org's ledger lock from outside the server until the block ends: every ledger
    write starts by updating the org's account row (billing/ledger_store.py), so each of the
    org's holds and settles waits here, uncommitted (PostgreSQL: the row lock; SQLite: the
    database's write lock, for less than its 5 s busy timeout in these tests). `usage`: usage
    rows wait too (PostgreSQL: a SHARE lock on their table, which every insert waits for;
    SQLite: the write lock already holds them)."""
    async with db.sessions() as session, session.begin():
        await session.execute(
            update(ACCOUNTS).where(ACCOUNTS.c.org_id == org_id).values(held=ACCOUNTS.c.held)
        )
        if usage and session.get_bind().dialect.name == "postgresql":
            await session.execute(text("LOCK TABLE usage_records IN SHARE MODE"))
        yield
