"""`lambdakit localstack` and `lambdakit bridge-address`: what a host-run LocalStack needs offline."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import click

from builder import runtimes
from builder.app import localstack
from builder.cli.options import JSON_OPTION
from builder.cli.render import TerminalProgress, emit_json, user_errors
from builder.docker import container, network, standin
from builder.errors import EnvironmentProblem


@click.group("localstack")
def localstack_group() -> None:
    """Make LocalStack run Lambda code on a machine that cannot download (scripts/localstack.sh uses it)."""


@localstack_group.command("standins")
@click.option(
    "--filesystem-root",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="LocalStack's FILESYSTEM_ROOT: the stand-in init goes where LocalStack looks before downloading.",
)
@click.option(
    "--registry", required=True, help="HOST:PORT of a loopback registry the Docker engine pushes to."
)
@click.option(
    "--runtime",
    "runtime_names",
    multiple=True,
    type=click.Choice(runtimes.runtime_names()),
    default=standin.DEFAULT_RUNTIMES,
    show_default=True,
    help="Runtime whose stand-in image is built (when missing) and served (repeatable). Runtime "
    "images already present for other runtimes and architectures are served too.",
)
@click.option(
    "--arch",
    "arches",
    multiple=True,
    type=click.Choice(runtimes.ARCHES),
    default=runtimes.ARCHES,
    show_default=True,
    help="Architectures to build stand-ins for (repeatable); another than this machine's needs qemu "
    f"(scripts/ensure-docker.sh --arm64) and exists for the Pythons a Debian suite ships "
    f"({standin.debian_pythons()}).",
)
@JSON_OPTION
@click.option("-v", "--verbose", is_flag=True, help="Show debootstrap's and docker build's own output.")
def standins_command(
    filesystem_root: Path,
    registry: str,
    runtime_names: tuple[str, ...],
    arches: tuple[str, ...],
    json_output: bool,
    verbose: bool,
) -> None:
    """Install the stand-in init, serve runtime images from REGISTRY, and print LocalStack's settings.

    \b
    Prints KEY=VALUE lines for LocalStack's environment. These are STAND-INS:
    LocalStack's real init (Go) and AWS's runtime images never run here; the
    init is lambdakit's own (data/localstack-init.py) and the images are
    Debian with a CPython of the runtime's version (lambdakit images list).
    """
    progress = TerminalProgress(verbose=verbose)
    with user_errors(json_output):
        outcomes = standin.build_standins(runtime_names, kinds=("runtime",), arches=arches, progress=progress)
        for outcome in outcomes:
            if outcome.status == "skipped":
                click.secho(f"skipped  {outcome.image}: {outcome.detail}", fg="yellow", err=True)
        init = localstack.install_init(filesystem_root)
        served = localstack.publish_runtime_images(registry, runtimes.runtime_names(), progress)
        if not served:
            raise EnvironmentProblem(
                "no runtime image (official or stand-in) is present to serve: every function would fail",
                hint="see the skipped lines above; lambdakit images build-standins builds them",
                step="registry",
            )
    settings = localstack.settings(registry)
    if json_output:
        rows = [asdict(row) for row in served]
        emit_json({"schema": 1, "init": str(init), "settings": settings, "runtimes": rows})
        return
    for row in served:
        click.echo(f"serving  {row.image} for {', '.join(row.arches)}", err=True)
    for key, value in settings.items():
        click.echo(f"{key}={value}")


@click.command("bridge-address")
@click.option("--subnet", is_flag=True, help="Print the containers' subnet instead (for pg_hba.conf).")
@JSON_OPTION
def bridge_address_command(subnet: bool, json_output: bool) -> None:
    """This host's address on Docker's default bridge: how containers reach a service here.

    `sam local invoke` and LocalStack's Lambda containers run on that bridge, where
    127.0.0.1 is the container itself: a database they use must listen on this
    address. Read from the network's gateway, else from its interface (docker0).
    """
    with user_errors(json_output):
        bridge = network.default_bridge(container.connect())
    if json_output:
        emit_json({"schema": 1, **asdict(bridge)})
    else:
        click.echo(bridge.subnet if subnet else bridge.address)
