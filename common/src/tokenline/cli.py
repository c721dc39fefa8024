"""The ``tokenline`` command.

Its verbs come from the installed Tokenline distributions: each registers a click command in
the ``tokenline.commands`` entry-point group (``tokenline processor`` from tokenline-processor,
``tokenline sink`` from tokenline-sink, ``tokenline dev`` from the development workspace), so a
service that installs only the SDK gets a command with only the verbs it can run. A verb's
module is imported only when that verb runs.
"""

from __future__ import annotations

from importlib.metadata import entry_points

import click

_GROUP = "tokenline.commands"


class _EntryPointGroup(click.Group):
    """A click group whose subcommands are loaded lazily from entry points."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        installed = {ep.name for ep in entry_points(group=_GROUP)}
        return sorted(installed.union(super().list_commands(ctx)))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            return command
        for ep in entry_points(group=_GROUP, name=cmd_name):
            loaded = ep.load()
            if not isinstance(loaded, click.Command):
                msg = f"entry point {ep.value!r} is not a click command"
                raise click.ClickException(msg)
            return loaded
        return None


@click.group(cls=_EntryPointGroup)
@click.version_option(package_name="tokenline-common", prog_name="tokenline")
def main() -> None:
    """Tokenline: LLM usage metering on Kafka and TimescaleDB."""
