"""`patchbay flags list|set|canary|kill`: feature flags' rollout (routing/flags.py, docs/flags.md).

`list` shows every known flag, its default, what it gates and its stored rollout (`--org ORG`
adds whether it is on for that org). `set NAME --percent P` rolls a flag out to P% of orgs by
a stable hash of the org id (`none`: back to its default); `canary NAME --add ORG --remove ORG`
edits the orgs that have it on whatever the percentage; `kill NAME` turns it off for every org
(the old path) and `kill NAME --undo` lets the rollout apply again.

Every write bumps the platform's config version: running servers rebuild their snapshots
within their config poll (a couple of seconds). Exit codes are those of `server/cli.py`: an
unknown org is 1; an unknown flag or a percentage outside 0-100 is 2.
"""

from __future__ import annotations

from typing import Any

import click
from sqlalchemy.ext.asyncio import AsyncSession

from foundation.errors import NotFoundError
from routing.flag_store import load_states, set_canary, set_killed, set_percent
from routing.flags import FLAGS, FlagState, is_on
from server.accounts import get_org
from server.cli_common import emit, json_option, run_in_session

_NAME = click.Choice(sorted(FLAGS))


def _describe(state: FlagState | None, name: str, org_id: str | None = None) -> dict[str, Any]:
    definition = FLAGS[name]
    out: dict[str, Any] = {
        "name": name,
        "default": definition.default,
        "gates": definition.gates,
        "percent": state.percent if state else None,
        "canary": sorted(state.canary) if state else [],
        "killed": bool(state and state.killed),
    }
    if org_id is not None:
        out["on_for_org"] = is_on(definition, state, org_id)
    return out


def _line(flag: dict[str, Any]) -> str:
    percent = "-" if flag["percent"] is None else f"{flag['percent']:g}%"
    parts = [
        f"{flag['name']:<20}",
        "KILLED" if flag["killed"] else f"default={'on' if flag['default'] else 'off'}",
        f"percent={percent}",
        f"canary={','.join(flag['canary']) or '-'}",
    ]
    if "on_for_org" in flag:
        parts.append(f"org={'on' if flag['on_for_org'] else 'off'}")
    return "  ".join(parts) + f"\n    {flag['gates']}"


@click.group("flags")
def flags_group() -> None:
    """Feature flags per org: canary orgs, percentage rollout and a global kill switch."""


@flags_group.command("list")
@click.option("--org", "org_ref", metavar="ORG", help="Also show whether each flag is on for this org.")
@json_option
def flags_list(org_ref: str | None, as_json: bool) -> None:
    """Every known flag: default, what it gates, percentage, canary orgs, kill switch."""

    async def read(s: AsyncSession) -> list[dict[str, Any]]:
        org_id = (await get_org(s, org_ref)).id if org_ref else None
        states = {st.name: st for st in await load_states(s)}
        return [_describe(states.get(name), name, org_id) for name in FLAGS]

    flags = run_in_session(read, as_json=as_json)
    emit(as_json, {"flags": flags}, "\n".join(_line(f) for f in flags))


def _percent(value: str) -> float | None:
    if value.lower() == "none":
        return None
    try:
        number = float(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a number (0-100) or `none`") from None
    if not 0 <= number <= 100:
        raise click.BadParameter(f"{value} is outside 0-100")
    return number


@flags_group.command("set")
@click.argument("name", type=_NAME)
@click.option(
    "--percent",
    required=True,
    metavar="P|none",
    help="0-100: share of orgs (stable hash of the org id) that have it on; `none`: the default.",
)
@json_option
def flags_set(name: str, percent: str, as_json: bool) -> None:
    """Roll a flag out to a percentage of orgs (canary orgs always have it on)."""
    value = _percent(percent)

    async def write(s: AsyncSession) -> FlagState:
        return await set_percent(s, name, value, actor="cli")

    state = run_in_session(write, as_json=as_json)
    flag = _describe(state, name)
    emit(as_json, flag, _line(flag))


@flags_group.command("canary")
@click.argument("name", type=_NAME)
@click.option(
    "--add", multiple=True, metavar="ORG", help="An org (id or name) that gets the flag on; repeatable."
)
@click.option(
    "--remove", multiple=True, metavar="ORG", help="An org to take off the canary list; repeatable."
)
@json_option
def flags_canary(name: str, add: tuple[str, ...], remove: tuple[str, ...], as_json: bool) -> None:
    """Add orgs to or remove them from a flag's canary list."""
    if not add and not remove:
        raise click.UsageError("give --add ORG or --remove ORG")

    async def write(s: AsyncSession) -> FlagState:
        added = [(await get_org(s, ref)).id for ref in add]
        removed = [await _org_id_or_ref(s, ref) for ref in remove]
        return await set_canary(s, name, add=added, remove=removed, actor="cli")

    state = run_in_session(write, as_json=as_json)
    flag = _describe(state, name)
    emit(as_json, flag, _line(flag))


async def _org_id_or_ref(s: AsyncSession, ref: str) -> str:
    """An org's id; a ref that names no org is taken as an id (a deleted org can still be removed)."""
    try:
        return (await get_org(s, ref)).id
    except NotFoundError:
        return ref


@flags_group.command("kill")
@click.argument("name", type=_NAME)
@click.option(
    "--undo", is_flag=True, help="Release the kill switch: the canary list and percentage apply again."
)
@json_option
def flags_kill(name: str, undo: bool, as_json: bool) -> None:
    """The global kill switch: the flag is off for every org (the old path) until `--undo`."""

    async def write(s: AsyncSession) -> FlagState:
        return await set_killed(s, name, not undo, actor="cli")

    state = run_in_session(write, as_json=as_json)
    flag = _describe(state, name)
    emit(as_json, flag, _line(flag))
