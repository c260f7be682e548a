"""`patchbay connection ...`: add, list, change, test and remove AI connections.

Connection commands act on one org's connections (`--org ORG`) or on the platform's, the
operator's connections every org may route to as its tier allows (`--platform`); what they
read is `server.cli_connection_args`.
"""

from __future__ import annotations

from collections.abc import Sequence

import click
from sqlalchemy.ext.asyncio import AsyncSession

from providers.probes import Verification
from routing.capability_proposals import Proposal, proposal_lines, propose
from routing.config_versions import bump
from routing.conformance.evidence import MeasuredCapabilities
from routing.conformance.store import load_results
from routing.connection_credentials import connection_credential
from routing.connections import ConnectionInfo, Connections, describe
from routing.declared_models import describe_model
from routing.platform import scope_of
from routing.verify import speaks, verify
from server.cli_common import emit, json_option, jsonable
from server.cli_connection_args import (
    owner_of,
    owner_options,
    parse_prices,
    price_option,
    read_key,
    require_key,
    with_connections,
    with_services,
)
from server.services import Services, services_environ
from voice.verify import voice_probe


def _line(c: ConnectionInfo) -> str:
    key = c.key.fingerprint if c.key else (f"env:{c.env_reference}" if c.env_reference else "no key")
    where = f" {c.base_url}" if c.base_url else ""
    return f"{c.profile_id}\t{c.status}\t#{c.position}\t{c.billing_source}\t{key}{where}"


def _detail(c: ConnectionInfo) -> str:
    """`_line` plus what a new user needs to read back: the declared models, and a missing key."""
    lines = [_line(c)]
    if c.models:
        lines.append("  models: " + " ".join(describe_model(m) for m in c.models))
    if c.key is None and c.env_reference is None:
        lines.append(
            f"  no key: requests go out without credentials (set one: `patchbay connection set-key {c.profile_id} --key-stdin`)"
        )
    return "\n".join(lines)


@click.group()
def connection() -> None:
    """AI Connections (auth profiles `provider:name`) of an org (`--org`) or of the platform (`--platform`)."""


@connection.command("add")
@owner_options
@click.option(
    "--provider",
    required=True,
    help="openai, anthropic, gemini, openrouter, xai, mistral, moonshot, elevenlabs, openai_compatible",
)
@click.option(
    "--name",
    help="Profile name (default `default`; required for custom endpoints, where it is the ref prefix).",
)
@click.option("--base-url", help="Override the provider's base URL (required for openai_compatible).")
@click.option(
    "--model",
    "models",
    multiple=True,
    metavar="ID[:CAP,...]",
    help="Declare a model the endpoint serves, with its capabilities (llama-3-70b:text,tools,json; "
    "default text). Repeatable.",
)
@price_option
@click.option("--key-stdin", is_flag=True, help="Read the key from standard input.")
@click.option("--env-reference", help="Read the key from this server environment variable instead.")
@json_option
def connection_add(
    org_ref: str | None,
    platform: bool,
    provider: str,
    name: str | None,
    base_url: str | None,
    models: Sequence[str],
    prices: Sequence[str],
    key_stdin: bool,
    env_reference: str | None,
    as_json: bool,
) -> None:
    """Add a connection. The key is stored encrypted and never shown again.

    With `--platform` it is the operator's: every org may route to it as its tier allows, and its
    use is billed `platform` (credits at the model's price and the tier's markup). Its name
    defaults to `platform` (`openai:platform/gpt-4o` names it in a ref)."""
    owner = owner_of(org_ref, platform)
    priced = parse_prices(prices, as_json)
    if not key_stdin and env_reference is None:
        require_key(provider, as_json)
    key = read_key(as_json) if key_stdin else None
    info = with_connections(
        as_json,
        lambda svc, s, org_id: svc.create(
            s,
            org_id,
            provider=provider,
            name=name,
            base_url=base_url,
            models=list(models),
            key=key,
            env_reference=env_reference,
            prices=priced,
        ),
        owner,
    )
    emit(as_json, info, _detail(info))


@connection.command("list")
@owner_options
@json_option
def connection_list(org_ref: str | None, platform: bool, as_json: bool) -> None:
    """List connections in routing order (keys shown as fingerprints)."""
    infos = with_connections(
        as_json, lambda svc, s, org_id: svc.list_all(s, org_id), owner_of(org_ref, platform)
    )
    emit(as_json, infos, "\n".join(_line(c) for c in infos) or "no connections")


@connection.command("set-key")
@owner_options
@click.argument("ref")
@click.option("--key-stdin", is_flag=True, required=True, help="Read the new key from standard input.")
@json_option
def connection_set_key(org_ref: str | None, platform: bool, ref: str, key_stdin: bool, as_json: bool) -> None:
    """Replace REF's key, keeping its id, history and routing position."""
    owner = owner_of(org_ref, platform)
    key = read_key(as_json)
    info = with_connections(as_json, lambda svc, s, org_id: svc.replace_key(s, org_id, ref, key), owner)
    emit(as_json, info, _line(info))


@connection.command("update")
@owner_options
@click.argument("ref")
@click.option("--base-url")
@click.option(
    "--model",
    "models",
    multiple=True,
    metavar="ID[:CAP,...]",
    help="Replace the declared models (repeatable), each with its capabilities: llama-3-70b:text,tools,json.",
)
@price_option
@click.option("--enable/--disable", "enabled", default=None)
@json_option
def connection_update(
    org_ref: str | None,
    platform: bool,
    ref: str,
    base_url: str | None,
    models: Sequence[str],
    prices: Sequence[str],
    enabled: bool | None,
    as_json: bool,
) -> None:
    """Change REF's base URL, declared models (and their prices) or enabled state. `--price`
    without `--model` prices models REF already declares, keeping the others' prices."""
    priced = parse_prices(prices, as_json)
    info = with_connections(
        as_json,
        lambda svc, s, org_id: svc.update(
            s, org_id, ref, base_url=base_url, models=list(models) or None, enabled=enabled, prices=priced
        ),
        owner_of(org_ref, platform),
    )
    emit(as_json, info, _detail(info))


@connection.command("revoke")
@owner_options
@click.argument("ref")
@json_option
def connection_revoke(org_ref: str | None, platform: bool, ref: str, as_json: bool) -> None:
    """Stop routing to REF and destroy its stored key (the record stays)."""
    info = with_connections(
        as_json, lambda svc, s, org_id: svc.revoke(s, org_id, ref), owner_of(org_ref, platform)
    )
    emit(as_json, info, _line(info))


@connection.command("delete")
@owner_options
@click.argument("ref")
@json_option
def connection_delete(org_ref: str | None, platform: bool, ref: str, as_json: bool) -> None:
    """Delete REF and its stored key."""
    info = with_connections(
        as_json, lambda svc, s, org_id: svc.delete(s, org_id, ref), owner_of(org_ref, platform)
    )
    emit(as_json, info, f"deleted {info.profile_id}")


@connection.command("reorder")
@owner_options
@click.option("--provider", required=True)
@click.argument("profiles", nargs=-1, required=True)
@json_option
def connection_reorder(
    org_ref: str | None, platform: bool, provider: str, profiles: Sequence[str], as_json: bool
) -> None:
    """Set the explicit order of PROVIDER's profiles (name each once, first is tried first)."""
    infos = with_connections(
        as_json,
        lambda svc, s, org_id: svc.reorder(s, org_id, provider, profiles),
        owner_of(org_ref, platform),
    )
    emit(as_json, infos, "\n".join(_line(c) for c in infos))


@connection.command("test")
@owner_options
@click.argument("ref")
@click.option("--model", help="Model for the tiny prompt (default: a declared or the cheapest known one).")
@json_option
def connection_test(org_ref: str | None, platform: bool, ref: str, model: str | None, as_json: bool) -> None:
    """Check REF's key, list its models and send a tiny prompt; exits 1 when a probe fails.

    The outcome (status, latency, error class, models found) is stored as the connection's
    health; prompts and answers are not.
    """

    async def run(
        services: Services, s: AsyncSession, org_id: str | None
    ) -> tuple[Verification, ConnectionInfo, list[Proposal]]:
        svc = services.connections(actor="cli")
        row = await svc.get(s, org_id, ref)
        # The CLI is an edge like the server: it may read operator environment references.
        credential = await connection_credential(s, svc.vault, row, services_environ(services.settings))
        # The server's pool and guard: the connector checks the address it connects to, so a
        # name that resolves differently after the base-URL check is still refused.
        tools = services.verify_tools()
        voice = [voice_probe(tools.clients)] if speaks(row) else []
        outcome = await verify(row, credential, tools, model=model, extra_probes=voice)
        await bump(s, scope_of(org_id))
        evidence = MeasuredCapabilities(await load_results(s, [row.id]))
        proposals = propose(row.provider, outcome.models, row.models or [], tools.catalog, evidence)
        return outcome, describe(row), proposals

    outcome, info, proposals = with_services(as_json, run, owner_of(org_ref, platform))
    lines = [
        f"{r.name}: {'ok' if r.ok else 'FAILED'} {r.latency_ms:.0f} ms"
        + (f" ({r.error_class.value}: {r.message})" if not r.ok and r.error_class else "")
        + (f" [{len(r.models)} models]" if r.models else "")
        for r in outcome.results
    ]
    if proposals:
        lines += ["models it serves, with capabilities to declare (`connection update --model ID:cap,...`):"]
        lines += proposal_lines(proposals)
    payload = {
        "ok": outcome.ok,
        "probes": [jsonable(r) for r in outcome.results],
        "connection": info,
        "proposals": [{**jsonable(p), "spec": p.spec} for p in proposals],
    }
    emit(as_json, payload, "\n".join([info.profile_id, *lines]))
    if not outcome.ok:
        raise SystemExit(1)


@connection.command("show")
@owner_options
@click.argument("ref")
@json_option
def connection_show(org_ref: str | None, platform: bool, ref: str, as_json: bool) -> None:
    """Show one connection, with its last verification result."""

    async def get(svc: Connections, s: AsyncSession, org_id: str | None) -> ConnectionInfo:
        return describe(await svc.get(s, org_id, ref))

    info = with_connections(as_json, get, owner_of(org_ref, platform))
    h = info.health
    health = (
        f"health {h.status} ({h.error_class or 'ok'}, {h.latency_ms} ms, {h.checked_at})"
        if h.status
        else "never tested"
    )
    emit(as_json, info, f"{_detail(info)}\n{health}")
