"""`lambdakit init`: options in, builder.app.init's plan written, the result rendered.

builder.cli.main loads it when it is run (its COMMANDS table).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from builder.app.init import InitOptions, InitResult, TemplateAddition, find_template, init_project
from builder.cli.options import JSON_OPTION
from builder.cli.render import emit_json, user_errors
from builder.errors import EXIT_OK


@click.command("init")
@click.option(
    "--layer",
    metavar="NAME",
    help="The layer's name and folder (layers/NAME). Default: psycopg2, a built-in recipe "
    "(`lambdakit layers` lists them). Needed with -r or -p.",
)
@click.option(
    "-r",
    "--requirements",
    type=click.Path(path_type=Path, dir_okay=False),
    help="A requirements file, copied to layers/NAME/requirements.txt. Default: that file when the "
    "project has it, else the built-in recipe NAME.",
)
@click.option(
    "-p",
    "--package",
    "packages",
    multiple=True,
    metavar="SPEC",
    help="A requirement (repeatable), e.g. -p numpy -p 'pydantic>=2': written to "
    "layers/NAME/requirements.txt. Not with -r.",
)
@click.option(
    "--logical-id",
    metavar="ID",
    help="The layer's logical id in the template. Default: the template's layer on layers/NAME, "
    "else NAME in CamelCase + Layer (psycopg2 -> Psycopg2Layer).",
)
@click.option(
    "--function",
    "functions",
    multiple=True,
    metavar="LOGICAL_ID",
    help="A function that uses the layer (repeatable). Default: every Python function of the template.",
)
@click.option(
    "--function-makefile",
    is_flag=True,
    help="Also build those functions with a Makefile in their CodeUri folder that resolves their "
    "requirements.txt with lambdakit for the target (a function with a BuildMethod already is left "
    "as it is).",
)
@click.option(
    "--edit-template",
    is_flag=True,
    help="Add the lines to the template in place: lines are only added, so comments, quoting, key "
    "order and !Ref, !GetAtt, !Sub ... tags stay as they are (a Layers list written [...] on one "
    "line gets the layer in it). Default: print them.",
)
@click.option(
    "--template",
    type=click.Path(path_type=Path, dir_okay=False),
    help="The SAM template. Default: template.yaml (or template.yml) in this folder.",
)
@JSON_OPTION
def init_command(
    layer: str | None,
    requirements: Path | None,
    packages: tuple[str, ...],
    logical_id: str | None,
    functions: tuple[str, ...],
    function_makefile: bool,
    edit_template: bool,
    template: Path | None,
    json_output: bool,
) -> None:
    """Add a layer built by lambdakit to an existing SAM project.

    \b
    Examples:
      lambdakit init                      # layers/psycopg2 for every Python function; prints
                                          # the lines to add to template.yaml
      lambdakit init --edit-template      # the same, and adds them to template.yaml
      lambdakit init --layer deps -p numpy -p 'pydantic>=2' --function ApiFunction
      lambdakit init --function-makefile --edit-template   # the functions' requirements too
      sam build                           # then: lambdakit builds and checks what SAM packages

    It writes layers/NAME/requirements.txt and layers/NAME/Makefile, whose target
    build-<LogicalId> (what `sam build` runs for `BuildMethod: makefile`) builds
    and validates the layer for the functions' runtime and architecture. The
    template needs an AWS::Serverless::LayerVersion on layers/NAME and
    `Layers: [!Ref <LogicalId>]` on the functions: init prints those lines, or
    adds them with --edit-template.

    It never overwrites: a file that exists with other content stops it before
    anything is written (exit 2). Run again when everything is in place, it
    writes nothing and says "already set up".
    """
    options = InitOptions(
        template=template or find_template(Path()),
        layer=layer,
        logical_id=logical_id,
        requirements=requirements,
        packages=packages,
        functions=functions,
        function_makefile=function_makefile,
        edit_template=edit_template,
    )
    with user_errors(json_output):
        result = init_project(options)
    if json_output:
        emit_json(result.to_dict())
    else:
        _render(result)
    sys.exit(EXIT_OK)


def _render(result: InitResult) -> None:
    plan = result.plan
    target = f"{plan.target.runtime} {plan.target.arch.name}"
    click.echo(f"layer {plan.layer} ({plan.logical_id}, {target}) for {', '.join(plan.functions)}")
    for file in plan.files:
        written = file.path in result.written
        click.echo(f"  {'wrote' if written else 'unchanged':<9} {file.path}  ({file.purpose})")
    for note in plan.notes:
        click.secho(f"note: {note}", fg="yellow", err=True)
    if plan.already_set_up:
        click.secho(
            f"already set up: {plan.template} and the files are in place; nothing written", fg="green"
        )
        return
    if result.template_edited:
        click.secho(f"edited {plan.template}, adding:", fg="green")
    elif plan.additions:
        click.secho(f"add to {plan.template} (or run init again with --edit-template):", bold=True)
    else:
        click.secho(f"{plan.template} already uses {plan.logical_id}", fg="green")
    for addition in plan.additions:
        _render_addition(addition, edited=result.template_edited)
    if result.template_edited or not plan.additions:
        click.echo("next: sam build")


def _render_addition(addition: TemplateAddition, *, edited: bool) -> None:
    if edited:  # the line numbers were the template's before the edit
        click.echo(f"  under {addition.where}:")
    elif addition.line is None:
        click.echo(f"  under {addition.where} (it {addition.reason}: by hand):")
    elif addition.into_line:
        click.echo(f"  into the list {addition.where} on line {addition.line}:")
    else:
        click.echo(f"  under {addition.where}, before line {addition.line}:")
    for line in addition.text.splitlines():
        click.echo(f"    {line}")
