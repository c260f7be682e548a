"""What a `patchbay connection ...` command reads: whose connections (`--org` or `--platform`),
declared prices (`--price`), a key from standard input, and the services it runs with.

Keys are read from standard input (`--key-stdin`), never from arguments, which other users of
the machine can see in the process list and which shells keep in their history.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import click
from sqlalchemy.ext.asyncio import AsyncSession

from billing.money import AmountError
from billing.prices import Price, PriceError, parse_price_spec
from foundation.errors import RequestError
from providers.contract import PRESETS, CredentialKind, ProviderId
from providers.vault.secret import Secret
from routing.connections import Connections, key_secret
from routing.errors import BaseUrlRefusedError
from server import accounts
from server.cli_common import fail, run_with_services
from server.services import Services

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


def owner_options(fn: F) -> F:
    """`--org ORG` or `--platform`: whose connections the command acts on (exactly one)."""
    fn = click.option(
        "--platform",
        is_flag=True,
        help="The platform's connections (operator-owned, billed `platform`, usable by every org its tier allows).",
    )(fn)
    return click.option("--org", "org_ref", help="Org id or name (or give --platform).")(fn)


def owner_of(org_ref: str | None, platform: bool) -> str | None:
    """The org ref, or None for the platform; usage error (exit 2) unless exactly one was given."""
    if platform and org_ref is not None:
        raise click.UsageError(
            "--platform and --org are exclusive: a platform connection belongs to no org (every org may use it); "
            "drop --org to manage the platform's connections, or --platform for the org's"
        )
    if not platform and org_ref is None:
        raise click.UsageError(
            "say whose connections: --org ORG, or --platform for the operator's platform connections"
        )
    return org_ref


price_option = click.option(
    "--price",
    "prices",
    multiple=True,
    metavar="ID=PRICE",
    help="A declared model's price in USD (repeatable): ID=IN/OUT or ID=IN/OUT/CACHED_IN per 1M tokens, "
    "ID=audio:USD/min, ID=chars:USD/1M. Wins over the catalog's price (docs/billing.md#declared-prices).",
)


def parse_prices(specs: Sequence[str], as_json: bool) -> dict[str, Price]:
    """`--price` values by model id: a malformed one is a usage error (2), a refused amount fails (1)."""
    prices: dict[str, Price] = {}
    for spec in specs:
        model_id, sep, text = spec.rpartition("=")
        model_id = model_id.strip()
        if not sep or not model_id:
            raise click.BadParameter(f"{spec!r} is not ID=PRICE", param_hint="--price")
        if model_id in prices:
            raise click.BadParameter(f"{model_id!r} is priced twice", param_hint="--price")
        try:
            prices[model_id] = parse_price_spec(text, param=f"price of {model_id}")
        except PriceError as exc:
            raise click.BadParameter(str(exc), param_hint="--price") from None
        except AmountError as exc:
            fail(str(exc), as_json=as_json, kind=exc.code)
    return prices


def read_key(as_json: bool) -> Secret:
    if sys.stdin is None or (sys.stdin.isatty() and not as_json):
        click.echo("paste the key, then press Enter:", err=True)
    raw = sys.stdin.readline() if sys.stdin is not None else ""
    key = raw.strip()
    if not key:
        fail("no key on standard input", as_json=as_json)
    try:
        return key_secret(key)
    except RequestError as exc:
        fail(str(exc), as_json=as_json)


def require_key(provider: str, as_json: bool) -> None:
    """Refuse, saying how to give one, a connection without a key to a provider that needs one."""
    try:
        preset = PRESETS[ProviderId(provider.strip().lower())]
    except ValueError:
        return  # the connection service names the providers
    if CredentialKind.NONE not in preset.credential_kinds:
        fail(
            f"{preset.display_name} needs a key: pipe it in with --key-stdin "
            f"(`printenv MY_KEY | patchbay connection add ... --key-stdin`), or read it from a variable of "
            f"the server's environment with --env-reference NAME",
            2,
            as_json=as_json,
            kind="invalid_request",
        )


def with_services(
    as_json: bool, fn: Callable[[Services, AsyncSession, str | None], Awaitable[T]], org_ref: str | None
) -> T:
    """`org_ref` None: the platform's (fn gets org id None)."""

    async def run(services: Services) -> T:
        async with services.db.session() as session:
            org_id = (await accounts.get_org(session, org_ref)).id if org_ref is not None else None
            return await fn(services, session, org_id)

    try:
        return run_with_services(run, as_json=as_json)
    except (RequestError, BaseUrlRefusedError) as exc:
        fail(str(exc), as_json=as_json, kind=exc.code)


def with_connections(
    as_json: bool, fn: Callable[[Connections, AsyncSession, str | None], Awaitable[T]], org_ref: str | None
) -> T:
    return with_services(
        as_json, lambda services, s, org_id: fn(services.connections(actor="cli"), s, org_id), org_ref
    )
