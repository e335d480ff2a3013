"""`lambdakit publish-layer`: a built layer as a Lambda layer version, in one or more regions."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from builder.app.destination import Destination
from builder.app.publish import PublishOptions, PublishResult, publish_layer
from builder.cli.options import DESTINATION_OPTION, ENDPOINT_OPTION, JSON_OPTION
from builder.cli.render import TerminalProgress, emit_json, user_errors
from builder.errors import EXIT_NOT_VERIFIED, EXIT_OK
from builder.progress import Silent
from builder.store import DEFAULT_OUT


@click.command("publish-layer")
@click.argument("name")
@DESTINATION_OPTION
@click.option(
    "--env",
    "config_env",
    help="samconfig.toml environment (in this folder) whose region is the default.",
)
@click.option(
    "--region",
    "regions",
    multiple=True,
    help="A region to publish in (repeatable). Default: --env's region, else us-east-1 on LocalStack "
    "and AWS_REGION on AWS.",
)
@ENDPOINT_OPTION
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    default=DEFAULT_OUT,
    show_default=True,
    help="Where build-layer published the layer (its --out).",
)
@click.option("--layer-name", help="The Lambda layer's name. Default: NAME.")
@click.option(
    "--allow-unverified",
    is_flag=True,
    help="Publish a layer whose imports could not be checked when it was built (NOT VERIFIED), or one "
    "built with --no-validate. Default: exit 3, nothing published.",
)
@click.option(
    "--s3-bucket",
    help="For a zip over the direct-upload limit: the bucket to upload it to, in the region published "
    "to. Default: lambdakit-layers-<account>-<region>, created when missing.",
)
@JSON_OPTION
def publish_layer_command(
    name: str,
    destination: Destination,
    config_env: str | None,
    regions: tuple[str, ...],
    endpoint_url: str,
    out: Path,
    layer_name: str | None,
    allow_unverified: bool,
    s3_bucket: str | None,
    json_output: bool,
) -> None:
    """Publish the layer build-layer built (OUT/NAME) as a Lambda layer version.

    \b
    Examples:
      lambdakit build-layer psycopg2 && lambdakit publish-layer psycopg2
      lambdakit publish-layer psycopg2 --target aws --region eu-west-1 --region us-east-1
      lambdakit publish-layer deps --target aws --env prod --json

    The version is compatible with the layer's one runtime and architecture and
    carries the zip's sha256 in its description. When the layer's latest version
    already holds this zip (Lambda's own CodeSha256 agrees) for that runtime and
    architecture, nothing is published ("up to date"). An invalid layer is never
    published (exit 1); one not import-checked is not either (exit 3) unless
    --allow-unverified. A zip over Lambda's direct-upload limit (50 MB, base64
    in the request) goes through S3 (--s3-bucket).
    """
    with user_errors(json_output):
        options = PublishOptions(
            name=name,
            destination=destination,
            regions=regions,
            config_env=config_env,
            out=out,
            layer_name=layer_name,
            endpoint_url=endpoint_url,
            allow_unverified=allow_unverified,
            s3_bucket=s3_bucket,
        )
        progress = Silent() if json_output else TerminalProgress(verbose=False)
        result = publish_layer(options, progress)
    if json_output:
        emit_json(result.to_dict())
    else:
        _render(result)
    if not result.published:
        click.secho(
            f"NOT VERIFIED: layer {name} is {result.verdict} (its imports were not checked when it was "
            "built); nothing was published (--allow-unverified publishes it)",
            fg="yellow",
            err=True,
        )
        sys.exit(EXIT_NOT_VERIFIED)
    sys.exit(EXIT_OK)


def _render(result: PublishResult) -> None:
    for outcome in result.regions:
        if outcome.status == "up-to-date":
            click.secho(f"up to date: {outcome.arn}", fg="green")
        else:
            click.secho(f"published: {outcome.arn} ({outcome.via} upload)", fg="green")
    if result.published and result.verdict != "valid":
        click.secho(f"  the layer is {result.verdict}: published with --allow-unverified", fg="yellow")
