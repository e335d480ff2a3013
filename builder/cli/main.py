"""The `lambdakit` group: every command, loaded when it is run, and the exit-code contract."""

from __future__ import annotations

import sys

import click

from builder import __version__, lazy
from builder.cli.render import emit_json, terminate_as_interrupt
from builder.errors import EXIT_USAGE

# Each command's module is imported when that command runs (builder/lazy.py): `lambdakit
# build-layer` does not load boto3 or psycopg2, and `lambdakit --version` loads none of them.
COMMANDS: dict[str, str] = {
    "build-layer": "builder.cli.layer:build_layer_command",
    "validate": "builder.cli.validate:validate_command",
    "runtimes": "builder.cli.layer:runtimes_command",
    "init": "builder.cli.init:init_command",
    "layers": "builder.cli.recipes:layers_command",
    "db": "builder.cli.db:db",
    "images": "builder.cli.images:images",
    "deploy": "builder.cli.deploy:deploy_command",
    "e2e": "builder.cli.deploy:e2e_command",
    "doctor": "builder.cli.deploy:doctor_command",
    "localstack": "builder.cli.localstack:localstack_group",
    "bridge-address": "builder.cli.localstack:bridge_address_command",
    "package-function": "builder.cli.function:package_function_command",
    "publish-layer": "builder.cli.publish:publish_layer_command",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        command = lazy.load(COMMANDS[cmd_name])
        assert isinstance(command, click.Command)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="lambdakit")
def cli() -> None:
    """Build and validate AWS Lambda layers with compiled dependencies.

    \b
    Exit codes (every command):
      0  done, and everything was checked
      1  invalid: the layer (or requirement set) cannot work on the runtime
      2  usage or environment error (bad option, missing file, no Docker, ...)
      3  built and statically audited, but the import could not be checked here
    """


def main() -> None:
    terminate_as_interrupt()
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except click.ClickException as err:
        # A bad option or argument: exit 2 like every usage error, one JSON document under --json.
        if "--json" in sys.argv[1:]:
            emit_json({"ok": False, "error": "UsageError", "step": "", "message": err.format_message(),
                       "hint": "see --help"})  # fmt: skip
        else:
            err.show()
        sys.exit(EXIT_USAGE)
