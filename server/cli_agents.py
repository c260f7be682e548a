"""`patchbay agent ...`: an org's agents (model defaults, fallback chains, voice settings) and
the org's own routing matrix (`agent routing`); refs no connection serves are saved with a warning.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import IO, Any, TypeVar

import click
from sqlalchemy.ext.asyncio import AsyncSession

from foundation.errors import RequestError
from routing.agents import AgentInfo, Agents, parse_chain_option
from routing.catalog import default_catalog
from routing.ref_check import RefProblem, check_refs, load_org_routing
from routing.voice_settings import OUTPUT_FORMATS, VoiceSettings
from server import accounts
from server.cli_common import emit, fail, json_option, jsonable, run_with_database
from server.cli_explain import agent_explain
from server.db import Database

T = TypeVar("T")
org_option = click.option("--org", "org_ref", required=True, help="Org id or name.")


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


def _save(
    org_ref: str,
    name: str,
    how: str,
    chains: dict[str, list[str]] | None,
    default_model: str | None,
    as_json: bool,
    voice: dict[str, Any],
) -> None:
    """`agent create` and `agent update`: save, print the agent, warn about refs nothing serves."""
    settings = _voice_settings(**voice, as_json=as_json)

    async def run(svc: Agents, s: AsyncSession, org_id: str) -> tuple[AgentInfo, list[RefProblem]]:
        save = svc.create if how == "create" else svc.update
        info = await save(
            s, org_id, name, chains=chains, default_model=default_model, voice_settings=settings
        )
        return info, await _unserved(s, org_id, chains=chains, default_model=default_model)

    info, problems = _with_agents(as_json, run, org_ref)
    emit(as_json, _warned(jsonable(info), problems), _agent_line(info))
    _warn(problems, as_json)


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
    _save(org_ref, name, "create", _chains(chains, as_json), default_model, as_json, voice)


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
    _save(org_ref, name, "update", parsed, default_model, as_json, voice)


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


agent.add_command(agent_explain)
