"""`lambdakit deploy`, `e2e` and `doctor`: options in, library call, rendering out.

builder.cli.main loads them when they are run (its COMMANDS table).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from builder.app.deploy import DeployResult, deploy
from builder.app.destination import Destination
from builder.app.doctor import doctor
from builder.app.e2e import E2EResult, e2e
from builder.app.plan import DeployOptions
from builder.cli.options import (
    DEFAULT_ENV,
    DESTINATION_OPTION,
    ENDPOINT_OPTION,
    ENV_OPTION,
    JSON_OPTION,
    PROJECT_OPTION,
)
from builder.cli.render import TerminalProgress, emit_json, user_errors
from builder.errors import EXIT_INVALID, EXIT_NOT_VERIFIED, EXIT_OK, EXIT_USAGE
from builder.progress import Progress, Silent


def _options(
    destination: Destination,
    config_env: str | None,
    project_dir: Path,
    endpoint_url: str,
    no_execute_changeset: bool = False,
    parameters: tuple[str, ...] = (),
    unsafe_skip_validation: bool = False,
) -> DeployOptions:
    env = config_env or DEFAULT_ENV.get(destination)
    if env is None:
        raise click.UsageError(
            f"--target {destination} needs --env (a samconfig.toml environment, e.g. prod)"
        )
    pairs = []
    for item in parameters:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--parameter")
        pairs.append((key, value))
    return DeployOptions(
        destination=destination,
        config_env=env,
        project=project_dir.resolve(),
        endpoint_url=endpoint_url,
        no_execute_changeset=no_execute_changeset,
        parameters=tuple(pairs),
        unsafe_skip_validation=unsafe_skip_validation,
    )


def _progress(json_output: bool, verbose: bool) -> Progress:
    return Silent() if json_output else TerminalProgress(verbose=verbose)


@click.command("deploy")
@DESTINATION_OPTION
@ENV_OPTION
@click.option(
    "--no-execute-changeset",
    is_flag=True,
    help="AWS only: create the change set for review, do not execute it.",
)
@click.option(
    "--parameter",
    "parameters",
    multiple=True,
    metavar="KEY=VALUE",
    help="A template parameter (repeatable); wins over samconfig.toml's parameter_overrides.",
)
@click.option(
    "--unsafe-skip-validation",
    is_flag=True,
    help="Deploy the function packages WITHOUT validating them. Only to reproduce what an "
    "unchecked deploy does; such a deploy can fail on Lambda.",
)
@ENDPOINT_OPTION
@PROJECT_OPTION
@JSON_OPTION
@click.option("-v", "--verbose", is_flag=True, help="Show sam's own output.")
def deploy_command(
    destination: Destination,
    config_env: str | None,
    no_execute_changeset: bool,
    parameters: tuple[str, ...],
    unsafe_skip_validation: bool,
    endpoint_url: str,
    project_dir: Path,
    json_output: bool,
    verbose: bool,
) -> None:
    """Validate, build and deploy the SAM app (template.yaml) to LocalStack or AWS.

    \b
    Examples:
      lambdakit deploy                                  # LocalStack at 127.0.0.1:4566
      lambdakit deploy --target aws --env prod --no-execute-changeset
      lambdakit deploy --target aws --env prod

    Every layer and Python function package is built and validated for its own
    runtime and architecture first, its Handler included; nothing invalid is
    deployed, and a function lambdakit cannot judge (Node, an image) is deployed
    as "not verified" (exit 3). On a LocalStack that does not apply layers
    (Community), the layers' content is copied into the function packages that
    use them. What only the application knows (a secret to create, a host to
    point at) runs first in its own hook: lambdakit.toml's [deploy] before.
    """
    options = _options(
        destination,
        config_env,
        project_dir,
        endpoint_url,
        no_execute_changeset,
        parameters=parameters,
        unsafe_skip_validation=unsafe_skip_validation,
    )
    interrupted = (
        "interrupted: a change set SAM had already executed goes on in CloudFormation; "
        "check the stack's status before deploying again"
    )
    with user_errors(json_output, interrupted=interrupted):
        result = deploy(options, _progress(json_output, verbose))
    if json_output:
        emit_json(result.to_dict())
    else:
        _render_deploy(result)
    if not result.ok:
        sys.exit(EXIT_INVALID)
    # Deployed, but what runs was not checked: never the exit code of a checked deploy.
    unchecked = {"skipped", "not-verified"} & set(result.functions.values())
    sys.exit(EXIT_NOT_VERIFIED if unchecked else EXIT_OK)


def _render_deploy(result: DeployResult) -> None:
    plan = result.plan
    for note in plan.notes:
        click.secho(f"note: {note}", fg="yellow", err=True)
    for record in result.merged:
        click.echo(f"  merged {record.layer} into {record.function}: {record.copied} files")
        for path in record.kept:
            click.secho(f"    kept the function's own {path} (it differs from the layer's)", fg="yellow")
        for folder in record.skipped:
            click.secho(f"    not merged: {folder}/ (a function package has no counterpart)", fg="yellow")
    checked = {**result.layers, **result.functions}
    click.echo("  validated: " + ", ".join(f"{name} {verdict}" for name, verdict in checked.items()))
    colour = "green" if result.ok else "red"
    stack = plan.environment.stack_name
    status = result.stack_status or "absent"
    click.secho(f"{stack} on {plan.destination} ({plan.region}): {status}", fg=colour, bold=True)
    for key, value in sorted(result.outputs.items()):
        click.echo(f"  {key}: {value}")
    for function, state in result.function_states.items():
        click.secho(f"  {function}: {state}", fg="green" if state == "Active" else "red")


@click.command("e2e")
@DESTINATION_OPTION
@ENV_OPTION
@click.option(
    "--timeout",
    "timeout_s",
    type=click.FloatRange(min=1),
    default=120,
    show_default=True,
    help="Seconds to wait for the worker to complete the task.",
)
@ENDPOINT_OPTION
@PROJECT_OPTION
@JSON_OPTION
def e2e_command(
    destination: Destination,
    config_env: str | None,
    timeout_s: float,
    endpoint_url: str,
    project_dir: Path,
    json_output: bool,
) -> None:
    """Create a task through the deployed API and wait until the worker completes it.

    Over HTTP where the target serves the HTTP API; by invoking the API function
    with an API Gateway event where it does not (LocalStack Community). Prints
    each hop's time; exits 1 when the task is not completed in time.
    """
    options = _options(destination, config_env, project_dir, endpoint_url)
    with user_errors(json_output):
        result = e2e(options, timeout_s=timeout_s)
    if json_output:
        emit_json(result.to_dict())
    else:
        _render_e2e(result)
    sys.exit(EXIT_OK if result.ok else EXIT_INVALID)


def _render_e2e(result: E2EResult) -> None:
    for hop in result.hops:
        click.echo(f"  {hop.seconds:8.3f}s  {hop.name}  {hop.detail}")
    if result.ok:
        click.secho(f"task {result.task_id} completed (API reached by {result.via})", fg="green", bold=True)
    else:
        click.secho(
            f"e2e failed at '{result.failed_hop}' (API reached by {result.via}): {result.reason}",
            fg="red",
            bold=True,
        )
    if result.diagnosis is not None:
        diagnosis = result.diagnosis
        click.echo(f"  {diagnosis.function}: {diagnosis.error or 'answers without error'}")
        if diagnosis.logs:
            click.echo(f"  its recent log lines ({len(diagnosis.logs)}):")
            for line in diagnosis.logs:
                click.echo(f"    {line}")
        else:
            click.echo("  no log lines recorded for it (a function that fails to start may leave none)")


@click.command("doctor")
@ENDPOINT_OPTION
@PROJECT_OPTION
@click.option(
    "--env",
    "config_env",
    default=DEFAULT_ENV["localstack"],
    show_default=True,
    help="samconfig.toml environment of the stack whose functions' logs are read on LocalStack.",
)
@JSON_OPTION
def doctor_command(endpoint_url: str, project_dir: Path, config_env: str, json_output: bool) -> None:
    """What this machine has for building, checking and deploying, and how to get the rest.

    Exits 2 (an environment error) when something every workflow needs is
    missing; lines marked "optional" are needed by some workflows only. When the
    project's stack is deployed on LocalStack, each function's CloudWatch Logs of
    the last 15 minutes are read for errors ([ERROR], Runtime.ImportModuleError,
    Task timed out, Traceback); a function that logged any is named with the
    command that diagnoses it (lambdakit validate --deployed).
    """
    with user_errors(json_output):
        report = doctor(project_dir, endpoint_url=endpoint_url, config_env=config_env)
    if json_output:
        emit_json(report.to_dict())
    else:
        for finding in report.findings:
            mark = "ok" if finding.ok else ("missing (optional)" if finding.optional else "MISSING")
            colour = "green" if finding.ok else "yellow"
            click.secho(f"{mark:<19} {finding.name}: {finding.detail}", fg=colour)
            if not finding.ok and finding.fix:
                click.echo(f"{'':<19} fix: {finding.fix}")
    sys.exit(EXIT_OK if report.ok else EXIT_USAGE)
