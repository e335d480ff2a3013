"""The options several commands share, and what their values mean."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from builder import runtimes
from builder.app.destination import DEFAULT_LOCALSTACK_URL, DESTINATIONS
from builder.errors import EXIT_INVALID, EXIT_NOT_VERIFIED, EXIT_OK
from builder.verify import IMPORT_CHECK_CHOICES

# Every command's --json: one JSON document on stdout, errors included.
JSON_OPTION = click.option("--json", "json_output", is_flag=True, help="Print one JSON document on stdout.")

RUNTIME_OPTION = click.option(
    "--runtime",
    type=click.Choice(runtimes.runtime_names()),
    default=runtimes.DEFAULT_RUNTIME,
    show_default=True,
    help="Lambda Python runtime the layer is for.",
)
ARCH_OPTION = click.option(
    "--arch",
    type=click.Choice(runtimes.ARCHES),
    default=runtimes.DEFAULT_ARCH,
    show_default=True,
    help="Lambda architecture the layer is for.",
)


class ChoiceList(click.ParamType):
    """Comma-separated choices, or "all"; with multiple=True the option may also repeat."""

    name = "list"

    def __init__(self, choices: list[str] | tuple[str, ...]) -> None:
        self.choices = tuple(choices)

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return f"[{'|'.join(self.choices)}|all],..."

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> tuple[str, ...]:
        if isinstance(value, tuple):  # click converts a default once more
            items: tuple[str, ...] = value
        elif value == "all":
            items = self.choices
        else:
            items = tuple(v.strip() for v in str(value).split(","))
        for item in items:
            if item not in self.choices:
                self.fail(f"{item!r} is not one of {', '.join(self.choices)}, or all", param, ctx)
        return items

    def shell_complete(
        self, ctx: click.Context, param: click.Parameter, incomplete: str
    ) -> list[click.shell_completion.CompletionItem]:
        done, _, last = incomplete.rpartition(",")
        prefix = f"{done}," if done else ""
        return [
            click.shell_completion.CompletionItem(prefix + choice)
            for choice in (*self.choices, "all")
            if choice.startswith(last)
        ]


def flat_choices(groups: tuple[tuple[str, ...], ...]) -> list[str]:
    return list(dict.fromkeys(item for group in groups for item in group))


IMPORT_CHECK_OPTION = click.option(
    "--import-check",
    type=click.Choice(IMPORT_CHECK_CHOICES),
    default="auto",
    show_default=True,
    help="Where modules are imported: the runtime image (Docker), a local interpreter of the same "
    "version, or auto (the image when available, else the interpreter, else not verified).",
)


def verdict_exit(verdict: str) -> int:
    return {"valid": EXIT_OK, "invalid": EXIT_INVALID, "not-verified": EXIT_NOT_VERIFIED}.get(
        verdict, EXIT_OK
    )


# The samconfig.toml environment used when --env is not given; AWS has none, so
# that a production deploy is always asked for by name.
DEFAULT_ENV = {"localstack": "localstack"}

DESTINATION_OPTION = click.option(
    "--target",
    "destination",
    type=click.Choice(DESTINATIONS),
    default="localstack",
    show_default=True,
    help="localstack: the LocalStack at --endpoint-url. aws: the account of your AWS credentials.",
)
ENV_OPTION = click.option(
    "--env",
    "config_env",
    help="samconfig.toml environment (--config-env). Default: localstack for LocalStack; required for AWS.",
)
ENDPOINT_OPTION = click.option(
    "--endpoint-url",
    envvar="LAMBDAKIT_LOCALSTACK_URL",
    default=DEFAULT_LOCALSTACK_URL,
    show_default=True,
    help="LocalStack's address (env LAMBDAKIT_LOCALSTACK_URL).",
)
PROJECT_OPTION = click.option(
    "--project-dir",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    default=Path(),
    help="Where template.yaml and samconfig.toml are. Default: the current directory.",
)

VERDICT_COLOUR = {"valid": "green", "invalid": "red", "not-verified": "yellow"}
