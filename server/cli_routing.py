"""`patchbay connection ...` and `patchbay agent ...`.

Connection commands act on one org's connections (`--org ORG`) or on the platform's, the
operator's connections every org may route to as its tier allows (`--platform`).

Keys are read from standard input (`--key-stdin`), never from arguments, which other users of
the machine can see in the process list and which shells keep in their history.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import IO, Any, TypeVar

import click
from sqlalchemy.ext.asyncio import AsyncSession

from billing.money import AmountError
from billing.prices import Price, PriceError, parse_price_spec
from foundation.errors import RequestError
from providers.contract import PRESETS, CredentialKind, ProviderId
from providers.probes import Verification
from providers.vault.secret import Secret
from routing.agents import AgentInfo, Agents, parse_chain_option
from routing.capability_proposals import Proposal, proposal_lines, propose
from routing.catalog import default_catalog
from routing.config_versions import bump
from routing.conformance.evidence import MeasuredCapabilities
from routing.conformance.store import load_results
from routing.connection_credentials import connection_credential
from routing.connections import ConnectionInfo, Connections, describe, key_secret
from routing.declared_models import describe_model
from routing.errors import BaseUrlRefusedError
from routing.platform import scope_of
from routing.ref_check import RefProblem, check_refs, load_org_routing
from routing.verify import speaks, verify
from routing.voice_settings import OUTPUT_FORMATS, VoiceSettings
from server import accounts
from server.cli_common import emit, fail, json_option, jsonable, run_with_database, run_with_services
from server.db import Database
from server.services import Services, services_environ
from voice.verify import voice_probe

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])
org_option = click.option("--org", "org_ref", required=True, help="Org id or name.")


def owner_options(fn: F) -> F:
    """`--org ORG` or `--platform`: whose connections the command acts on (exactly one)."""
    fn = click.option(
        "--platform",
        is_flag=True,
        help="The platform's connections (operator-owned, billed `platform`, usable by every org its tier allows).",
    )(fn)
    return click.option("--org", "org_ref", help="Org id or name (or give --platform).")(fn)


def _owner(org_ref: str | None, platform: bool) -> str | None:
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


def _prices(specs: Sequence[str], as_json: bool) -> dict[str, Price]:
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


def _read_key(as_json: bool) -> Secret:
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


def _needs_no_key(provider: str, as_json: bool) -> None:
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


def _with_services(
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


def _with_connections(
    as_json: bool, fn: Callable[[Connections, AsyncSession, str | None], Awaitable[T]], org_ref: str | None
) -> T:
    return _with_services(
        as_json, lambda services, s, org_id: fn(services.connections(actor="cli"), s, org_id), org_ref
    )


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
    owner = _owner(org_ref, platform)
    priced = _prices(prices, as_json)
    if not key_stdin and env_reference is None:
        _needs_no_key(provider, as_json)
    key = _read_key(as_json) if key_stdin else None
    info = _with_connections(
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
    infos = _with_connections(
        as_json, lambda svc, s, org_id: svc.list_all(s, org_id), _owner(org_ref, platform)
    )
    emit(as_json, infos, "\n".join(_line(c) for c in infos) or "no connections")


@connection.command("set-key")
@owner_options
@click.argument("ref")
@click.option("--key-stdin", is_flag=True, required=True, help="Read the new key from standard input.")
@json_option
def connection_set_key(org_ref: str | None, platform: bool, ref: str, key_stdin: bool, as_json: bool) -> None:
    """Replace REF's key, keeping its id, history and routing position."""
    owner = _owner(org_ref, platform)
    key = _read_key(as_json)
    info = _with_connections(as_json, lambda svc, s, org_id: svc.replace_key(s, org_id, ref, key), owner)
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
    priced = _prices(prices, as_json)
    info = _with_connections(
        as_json,
        lambda svc, s, org_id: svc.update(
            s, org_id, ref, base_url=base_url, models=list(models) or None, enabled=enabled, prices=priced
        ),
        _owner(org_ref, platform),
    )
    emit(as_json, info, _detail(info))


@connection.command("revoke")
@owner_options
@click.argument("ref")
@json_option
def connection_revoke(org_ref: str | None, platform: bool, ref: str, as_json: bool) -> None:
    """Stop routing to REF and destroy its stored key (the record stays)."""
    info = _with_connections(
        as_json, lambda svc, s, org_id: svc.revoke(s, org_id, ref), _owner(org_ref, platform)
    )
    emit(as_json, info, _line(info))


@connection.command("delete")
@owner_options
@click.argument("ref")
@json_option
def connection_delete(org_ref: str | None, platform: bool, ref: str, as_json: bool) -> None:
    """Delete REF and its stored key."""
    info = _with_connections(
        as_json, lambda svc, s, org_id: svc.delete(s, org_id, ref), _owner(org_ref, platform)
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
    infos = _with_connections(
        as_json, lambda svc, s, org_id: svc.reorder(s, org_id, provider, profiles), _owner(org_ref, platform)
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

    outcome, info, proposals = _with_services(as_json, run, _owner(org_ref, platform))
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

    info = _with_connections(as_json, get, _owner(org_ref, platform))
    h = info.health
    health = (
        f"health {h.status} ({h.error_class or 'ok'}, {h.latency_ms} ms, {h.checked_at})"
        if h.status
        else "never tested"
    )
    emit(as_json, info, f"{_detail(info)}\n{health}")


def _with_agents(as_json: bool, fn: Callable[[Agents, AsyncSession, str], Awaitable[T]], org_ref: str) -> T:
    async def run(db: Database) -> T:
        async with db.session() as session:
            org_id = (await accounts.get_org(session, org_ref)).id
            return await fn(Agents(actor="cli"), session, org_id)

    try:
        return run_with_database(run, as_json=as_json)
    except RequestError as exc:
        fail(str(exc), as_json=as_json, kind=exc.code)


def _agent_line(a: AgentInfo) -> str:
    chains = "; ".join(f"{k}={','.join(v)}" for k, v in sorted(a.chains.items())) or "no chains"
    line = f"{a.name}\t{a.default_model or '-'}\t{chains}"
    return f"{line}\n  {_voice_line(a.voice_settings)}" if not a.voice_settings.empty else line


def _voice_line(v: VoiceSettings) -> str:
    """One readable line; the instructions are cut short (the full text is in `--json`)."""
    parts = [
        f"{label} {value}"
        for label, value in (("voice", v.voice), ("language", v.language), ("output", v.output_format))
        if value
    ]
    if v.instructions:
        first = v.instructions.strip().splitlines()[0]
        shown = first if len(first) <= 40 and first == v.instructions.strip() else first[:40].rstrip() + "…"
        parts.append(f"instructions {shown!r} ({len(v.instructions)} chars)")
    return " · ".join(parts)


def voice_options(fn: Callable[..., None]) -> Callable[..., None]:
    """`--voice`, `--instructions` or `--instructions-file`, `--language`, `--output-format`;
    an empty value (`--voice ''`) clears that setting."""
    for option in reversed(
        (
            click.option("--voice", help="TTS voice id for the agent's voice sessions ('' clears it)."),
            click.option(
                "--instructions", help="System prompt of the agent's voice sessions ('' clears it)."
            ),
            click.option(
                "--instructions-file",
                type=click.File(encoding="utf-8"),
                help="Read the instructions from a file ('-': standard input).",
            ),
            click.option("--language", help="Language spoken to the agent, e.g. en or en-US ('' clears it)."),
            click.option(
                "--output-format", help=f"Output audio: {', '.join(OUTPUT_FORMATS)} ('' clears it)."
            ),
        )
    ):
        fn = option(fn)
    return fn


def _voice_settings(
    voice: str | None,
    instructions: str | None,
    instructions_file: IO[str] | None,
    language: str | None,
    output_format: str | None,
    as_json: bool,
) -> dict[str, str | None]:
    if instructions is not None and instructions_file is not None:
        fail("give --instructions or --instructions-file, not both", 2, as_json=as_json)
    if instructions_file is not None:
        try:
            instructions = instructions_file.read()
        except UnicodeDecodeError:
            fail("--instructions-file must be UTF-8 text", 2, as_json=as_json)
    settings = {
        "voice": voice,
        "instructions": instructions,
        "language": language,
        "output_format": output_format,
    }
    return {k: v for k, v in settings.items() if v is not None}


def _chains(values: Sequence[str], as_json: bool) -> dict[str, list[str]]:
    try:
        return parse_chain_option(values)
    except RequestError as exc:
        fail(str(exc), 2, as_json=as_json, kind=exc.code)


@click.group()
def agent() -> None:
    """Agents: per-agent model defaults, fallback chains and voice settings."""


@agent.command("create")
@org_option
@click.argument("name")
@click.option(
    "--chain", "chains", multiple=True, help="intent=REF,REF,... (primary first); repeat per intent."
)
@click.option("--default-model", help="The agent's default model ref.")
@voice_options
@json_option
def agent_create(
    org_ref: str, name: str, chains: Sequence[str], default_model: str | None, as_json: bool, **voice: Any
) -> None:
    """Create agent NAME; requests for model `agent:NAME` follow its chains, voice sessions of
    keys bound to it start with its voice settings."""
    parsed = _chains(chains, as_json)
    settings = _voice_settings(**voice, as_json=as_json)

    async def run(svc: Agents, s: AsyncSession, org_id: str) -> tuple[AgentInfo, list[RefProblem]]:
        info = await svc.create(
            s, org_id, name, chains=parsed, default_model=default_model, voice_settings=settings
        )
        return info, await _unserved(s, org_id, chains=parsed, default_model=default_model)

    info, problems = _with_agents(as_json, run, org_ref)
    emit(as_json, _warned(jsonable(info), problems), _agent_line(info))
    _warn(problems, as_json)


@agent.command("update")
@org_option
@click.argument("name")
@click.option(
    "--chain",
    "chains",
    multiple=True,
    help="intent=REF,... replaces that intent's chain; intent= removes it.",
)
@click.option("--default-model")
@voice_options
@json_option
def agent_update(
    org_ref: str, name: str, chains: Sequence[str], default_model: str | None, as_json: bool, **voice: Any
) -> None:
    """Change an agent's chains, default model or voice settings (the others stay as they are)."""
    parsed = _chains(chains, as_json) if chains else None
    settings = _voice_settings(**voice, as_json=as_json)

    async def run(svc: Agents, s: AsyncSession, org_id: str) -> tuple[AgentInfo, list[RefProblem]]:
        info = await svc.update(
            s, org_id, name, chains=parsed, default_model=default_model, voice_settings=settings
        )
        return info, await _unserved(s, org_id, chains=parsed, default_model=default_model)

    info, problems = _with_agents(as_json, run, org_ref)
    emit(as_json, _warned(jsonable(info), problems), _agent_line(info))
    _warn(problems, as_json)


@agent.command("list")
@org_option
@json_option
def agent_list(org_ref: str, as_json: bool) -> None:
    """List agents, their chains and voice settings."""
    infos = _with_agents(as_json, lambda svc, s, org_id: svc.list_all(s, org_id), org_ref)
    emit(as_json, infos, "\n".join(_agent_line(a) for a in infos) or "no agents")


@agent.command("delete")
@org_option
@click.argument("name")
@json_option
def agent_delete(org_ref: str, name: str, as_json: bool) -> None:
    """Delete an agent (its API keys stop working)."""
    info = _with_agents(as_json, lambda svc, s, org_id: svc.delete(s, org_id, name), org_ref)
    emit(as_json, info, f"deleted agent {info.name}")


@agent.command("routing")
@org_option
@click.option(
    "--chain",
    "chains",
    multiple=True,
    help="Org-level intent=REF,... (the matrix every agent falls back to).",
)
@click.option("--default-model", help="The org's default model ref.")
@click.option(
    "--allow", "allowed", multiple=True, help="Replace the org's allowlist with these refs (repeatable)."
)
@json_option
def org_routing(
    org_ref: str, chains: Sequence[str], default_model: str | None, allowed: Sequence[str], as_json: bool
) -> None:
    """Set the org's own routing matrix, default model and allowlist."""
    parsed = _chains(chains, as_json) if chains else None

    async def run(svc: Agents, s: AsyncSession, org_id: str) -> tuple[dict[str, Any], list[RefProblem]]:
        allow = list(allowed) or None
        row = await svc.set_org_routing(
            s, org_id, chains=parsed, default_model=default_model, allowed_models=allow
        )
        out = {
            "default_model": row.default_model,
            "chains": dict(row.routing or {}),
            "allowed_models": row.allowed_models,
        }
        return out, await _unserved(
            s, org_id, chains=parsed, default_model=default_model, allowed_models=allow
        )

    out, problems = _with_agents(as_json, run, org_ref)
    emit(as_json, _warned(out, problems), routing_text(out))
    _warn(problems, as_json)


def routing_text(out: Mapping[str, Any]) -> str:
    """The org's routing as a person reads it (`--json` has the same as data)."""
    chains: Mapping[str, Sequence[str]] = out.get("chains") or {}
    lines = [f"default model: {out.get('default_model') or 'none'}"]
    lines.append("chains:" if chains else "chains: none (the default model serves text intents)")
    lines += [f"  {intent}: {' -> '.join(refs)}" for intent, refs in sorted(chains.items())]
    allowed = out.get("allowed_models")
    lines.append(
        f"allowlist: {', '.join(allowed)}" if allowed else "allowlist: none (callers may pin any model)"
    )
    return "\n".join(lines)


async def _unserved(session: AsyncSession, org_id: str, **refs: Any) -> list[RefProblem]:
    return check_refs(await load_org_routing(session, org_id), default_catalog(), **refs)


def _warned(payload: dict[str, Any], problems: Sequence[RefProblem]) -> dict[str, Any]:
    """`--json` carries the warnings as data (`warnings`, only when there are some)."""
    return {**payload, "warnings": [p.message for p in problems]} if problems else payload


def _warn(problems: Sequence[RefProblem], as_json: bool) -> None:
    """Saved, but requests will skip these refs: say so on stderr (stdout stays the result)."""
    for problem in [] if as_json else problems:
        click.echo(f"warning: {problem.message}", err=True)
