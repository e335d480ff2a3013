"""`lambdakit validate --deployed FUNCTION`: a function as Lambda has it, downloaded and checked.

Loaded by the validate command only when --deployed is given: it talks to AWS or LocalStack.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NoReturn

import click

from builder.app.deploy import aws_clients
from builder.app.deployed import PACKAGE_SOURCE, DeployedReport, cache_dir, lambda_region, validate_deployed
from builder.app.destination import Destination
from builder.app.localstack_info import detect_localstack
from builder.app.samconfig import read_samconfig
from builder.cli.options import VERDICT_COLOUR, verdict_exit
from builder.cli.render import emit_json, render_imports, render_problems, user_errors
from builder.errors import UsageError
from builder.verify import ImportCheckChoice


def validate_deployed_function(
    name: str | None,
    *,
    given: list[str],
    destination: Destination,
    config_env: str | None,
    region: str | None,
    endpoint_url: str,
    project_dir: Path,
    import_check: ImportCheckChoice,
    json_output: bool,
) -> NoReturn:
    with user_errors(json_output):
        if name is None:
            raise UsageError(
                "give a PATH to validate, or --deployed FUNCTION", hint="see lambdakit validate --help"
            )
        if given:
            raise UsageError(
                f"{', '.join(given)} cannot be given with --deployed: the function's configuration "
                "says its runtime, architecture, handler and layers",
                hint=f"run: lambdakit validate --deployed {name} --target {destination}",
            )
        if config_env and region:
            raise UsageError("--env and --region both say the region", hint="give one of them")
        environment = read_samconfig(project_dir / "samconfig.toml", config_env) if config_env else None
        localstack = detect_localstack(endpoint_url) if destination == "localstack" else None
        lambda_client = aws_clients(
            lambda_region(destination, region=region, environment=environment), localstack
        )
        report = validate_deployed(
            lambda_client("lambda"),
            name,
            cache=cache_dir(),
            import_check=import_check,
            localstack_url=localstack.url if localstack else None,
        )
    if json_output:
        emit_json(report.to_dict())
    else:
        _render(report)
    sys.exit(verdict_exit(report.verdict))


def _render(report: DeployedReport) -> None:
    function = report.function
    click.secho(
        f"{function.name}: {report.verdict.upper()} for {report.report.target.describe()}, "
        f"handler {function.handler}",
        fg=VERDICT_COLOUR[report.verdict],
        bold=True,
    )
    artifacts = [(PACKAGE_SOURCE, function.code.sha256, report.code_cached)] + [
        (layer.label, layer.content.sha256, cached)
        for layer, cached in zip(function.layers, report.layers_cached, strict=True)
    ]
    for label, sha256, cached in artifacts:
        click.echo(f"  {label}: sha256 {sha256[:16]} ({'cached' if cached else 'downloaded'})")
    # Grouped by the artifact each file came from, in the order Lambda assembles them.
    for label in dict.fromkeys([*(a[0] for a in artifacts), *(p.source for p in report.report.problems)]):
        problems = [p for p in report.report.problems if p.source == label]
        if problems:
            click.echo(f"  from {label or 'the function as assembled'}:")
            render_problems(problems)
    render_imports(report.report.imports)
