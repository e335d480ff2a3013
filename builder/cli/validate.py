"""`lambdakit validate`: a layer, a function package or a SAM build output, proven for its runtime."""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import click
from click.core import ParameterSource

from builder import lazy, runtimes
from builder.app.destination import Destination
from builder.app.sam_build import SamBuildReport, find_sam_build, validate_sam_build
from builder.cli.options import (
    ARCH_OPTION,
    DESTINATION_OPTION,
    ENDPOINT_OPTION,
    ENV_OPTION,
    IMPORT_CHECK_OPTION,
    JSON_OPTION,
    PROJECT_OPTION,
    RUNTIME_OPTION,
    VERDICT_COLOUR,
    verdict_exit,
)
from builder.cli.render import emit_json, render_imports, render_problems, user_errors
from builder.errors import UsageError
from builder.matrix import rank
from builder.report import ValidationReport
from builder.validate import validate_function_package, validate_layer
from builder.verify import ImportCheckChoice

# Loaded only for --deployed (builder/lazy.py): it talks to AWS or LocalStack through boto3.
DEPLOYED = "builder.cli.deployed:validate_deployed_function"
# The options that say where a --deployed function is, by parameter name.
DEPLOYED_OPTIONS = {
    "destination": "--target",
    "config_env": "--env",
    "region": "--region",
    "endpoint_url": "--endpoint-url",
    "project_dir": "--project-dir",
}


@click.command("validate")
@click.argument("path", type=click.Path(path_type=Path, exists=True), required=False)
@RUNTIME_OPTION
@ARCH_OPTION
@click.option(
    "--function",
    "is_function",
    is_flag=True,
    help="PATH is a function package (its root is on sys.path, as /var/task), not a layer.",
)
@click.option(
    "--layer",
    "layers",
    multiple=True,
    type=click.Path(path_type=Path, exists=True),
    help="With --function: a layer the function uses (repeatable), present during the import check.",
)
@click.option(
    "--deployed",
    metavar="FUNCTION",
    help="Instead of PATH: the function deployed under this name (or ARN) at --target, read back "
    "from Lambda with its layers.",
)
@DESTINATION_OPTION
@ENV_OPTION
@click.option("--region", help="With --deployed: the function's region (default: --env's, else AWS_REGION).")
@ENDPOINT_OPTION
@PROJECT_OPTION
@IMPORT_CHECK_OPTION
@JSON_OPTION
def validate_command(
    path: Path | None,
    runtime: str,
    arch: str,
    is_function: bool,
    layers: tuple[Path, ...],
    deployed: str | None,
    destination: Destination,
    config_env: str | None,
    region: str | None,
    endpoint_url: str,
    project_dir: Path,
    import_check: ImportCheckChoice,
    json_output: bool,
) -> None:
    """Prove that the layer, function package or SAM build at PATH loads on its runtime.

    \b
    PATH is one of:
      a layer: a directory with python/, a layer .zip, a build output
        (build/layers/NAME) or a layer's source folder (layers/NAME: its build output)
      a function package, with --function (and the layers it uses: --layer, in order)
      what `sam build` wrote (.aws-sam/build, holding template.yaml), or a SAM project
        root that was built: every Python function with the template's layers it
        uses and its Handler, and every layer alone, each for the runtime and
        architecture the template gives it (so --runtime, --arch, --function and
        --layer do not apply)
    or, with --deployed FUNCTION and no PATH, a function as Lambda (or LocalStack)
      has it: its code and layer versions downloaded (cached by sha256 in
      ~/.cache/lambdakit/deployed), assembled as Lambda does, and checked for its
      Runtime, Architectures and Handler; each problem says which artifact its file
      came from, and a file a later layer overwrites is reported (layer-overwrite)

    \b
    Examples:
      lambdakit validate build/layers/psycopg2 --runtime python3.12 --arch x86_64
      lambdakit validate layer.zip --runtime python3.11 --json
      lambdakit validate fn/ --function --layer build/layers/psycopg2
      lambdakit validate .aws-sam/build          # after sam build
      lambdakit validate .                       # the same, from the project root
      lambdakit validate --deployed my-worker --target localstack
      lambdakit validate --deployed my-worker --target aws --env prod --json

    Every binary is audited statically (format, architecture, Python ABI, glibc
    symbol versions, needed libraries, layout, size), then each top-level module is
    imported in the runtime's image or a local interpreter of the same version. A
    check that cannot run is reported "not verified", and the exit code is 3, never
    0. A SAM build exits with its worst artifact's code.
    """
    source = click.get_current_context().get_parameter_source
    given = [f"--{name}" for name in ("runtime", "arch") if source(name) is not ParameterSource.DEFAULT]
    given += ["--function"] * is_function + ["--layer"] * bool(layers)
    deployment = [
        flag
        for name, flag in DEPLOYED_OPTIONS.items()
        # On the command line only: LAMBDAKIT_LOCALSTACK_URL in the environment is no mistake.
        if source(name) is ParameterSource.COMMANDLINE
    ]
    if deployed is not None or path is None:
        validate_deployed_function: Callable[..., NoReturn] = lazy.load(DEPLOYED)
        validate_deployed_function(
            deployed,
            given=[*given, *([str(path)] if path else [])],
            destination=destination,
            config_env=config_env,
            region=region,
            endpoint_url=endpoint_url,
            project_dir=project_dir,
            import_check=import_check,
            json_output=json_output,
        )
    with user_errors(json_output):
        if deployment:
            raise UsageError(
                f"{', '.join(deployment)}: for --deployed FUNCTION only",
                hint="validate a local PATH without them",
            )
    build_dir = find_sam_build(path)
    if build_dir is not None:
        _validate_sam_build(path, build_dir, given=given, import_check=import_check, json_output=json_output)
    with user_errors(json_output):
        target = runtimes.target(runtime, arch)
        if is_function:
            report = validate_function_package(path, layers, target, import_check=import_check)
        elif layers:
            raise UsageError("--layer goes with --function", hint="validate each layer on its own")
        else:
            report = validate_layer(path, target, import_check=import_check)
    if json_output:
        emit_json(report.to_dict())
    else:
        _render_validation(path, report)
    sys.exit(verdict_exit(report.verdict))


def _validate_sam_build(
    path: Path, build_dir: Path, *, given: list[str], import_check: ImportCheckChoice, json_output: bool
) -> NoReturn:
    with user_errors(json_output):
        if given:
            raise UsageError(
                f"{', '.join(given)} cannot be given with a SAM build: its template says each "
                "function's runtime, architecture and layers",
                hint=f"run: lambdakit validate {path}",
            )
        report = validate_sam_build(build_dir, import_check=import_check)
    if json_output:
        emit_json(report.to_dict())
    else:
        _render_sam_build(report)
    sys.exit(verdict_exit(report.verdict))


def _render_validation(path: Path, report: ValidationReport) -> None:
    colour = VERDICT_COLOUR[report.verdict]
    click.secho(f"{path}: {report.verdict.upper()} for {report.target.describe()}", fg=colour, bold=True)
    render_problems(report.problems)
    render_imports(report.imports)


def _render_sam_build(report: SamBuildReport) -> None:
    for artifact in report.artifacts:
        target = f"{artifact.runtime} {artifact.arch}" if artifact.runtime else "no runtime"
        click.secho(
            f"{artifact.kind} {artifact.logical_id} ({target}): {artifact.verdict.upper()}",
            fg=VERDICT_COLOUR[artifact.verdict],
            bold=True,
        )
        click.echo(f"  path: {artifact.path}")
        if artifact.note:
            click.secho(f"  {artifact.note}", fg="yellow")
        render_problems(artifact.problems)
        if artifact.report is not None:
            render_problems(artifact.report.problems)
            render_imports(artifact.report.imports)
    counts = Counter(a.verdict for a in report.artifacts)
    tally = ", ".join(f"{counts[v]} {v}" for v in sorted(counts, key=rank))
    click.secho(
        f"{report.template}: {report.verdict.upper()} ({tally} of {len(report.artifacts)} artifacts)",
        fg=VERDICT_COLOUR[report.verdict],
        bold=True,
    )
