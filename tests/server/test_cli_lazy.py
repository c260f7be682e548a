"""The `patchbay` command line loads a command group only when it runs: `patchbay --help` imports
none of them, nor the database layer, the help it prints matches each command's own, and every command is still reachable
(with `--json`, except the foreground `serve`)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import click
import pytest
from click.testing import CliRunner

from server.cli import COMMANDS, cli


def leaves(group: click.Group, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None, (*path, name)
        if isinstance(command, click.Group):
            yield from leaves(command, (*path, name))
        else:
            yield (*path, name), command


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_the_listed_help_is_the_commands_own(name: str) -> None:
    command = cli.get_command(click.Context(cli), name)
    assert command is not None and command.name == name
    assert COMMANDS[name][2] == command.get_short_help_str(limit=1_000), (
        f"server/cli.py COMMANDS[{name!r}] lists a short help that is not the command's docstring"
    )


def test_help_lists_every_command_without_importing_them() -> None:
    # As the console script runs it: `main` configures logging (reading the settings) first.
    probe = (
        "import json, sys\n"
        "from server.cli import main\n"
        "sys.argv = ['patchbay', '--help']\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as exit:\n"
        "    code = exit.code\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('server.cli_') or m in"
        " ('server.services', 'server.accounts', 'aiohttp', 'alembic', 'sqlalchemy'))\n"
        "print(json.dumps({'code': code, 'loaded': loaded}), file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False
    )
    result = json.loads(done.stderr.strip().splitlines()[-1])
    assert result == {"code": 0, "loaded": []}, done.stderr
    listed = done.stdout.split("Commands:", 1)[1]
    names = [line.split()[0] for line in listed.strip().splitlines()]
    assert names == sorted([*COMMANDS, "serve"])


def test_every_command_answers_help_and_takes_json() -> None:
    runner = CliRunner()
    found = list(leaves(cli))
    assert (
        len(found) == 53
    )  # the whole tree, the lazy groups loaded on the way (one more command: one more here)
    for path, command in found:
        answer = runner.invoke(cli, [*path, "--help"])
        assert answer.exit_code == 0, (path, answer.output)
        assert f"Usage: cli {' '.join(path)}" in answer.output, (path, answer.output)
        options = {option for param in command.params for option in getattr(param, "opts", [])}
        assert "--json" in options or path == ("serve",), f"`patchbay {' '.join(path)}` has no --json"


def test_an_unknown_command_is_a_usage_error() -> None:
    answer = CliRunner().invoke(cli, ["nosuch"])
    assert answer.exit_code == 2
    assert "No such command 'nosuch'" in answer.output
