"""`lambdakit images`: the Lambda images lambdakit uses, and offline stand-ins for them."""

from __future__ import annotations

import click

from builder import runtimes
from builder.cli.options import JSON_OPTION
from builder.cli.render import TerminalProgress, emit_json, user_errors
from builder.docker import standin
from builder.docker.container import STANDIN_LABEL
from builder.host import host_arch


@click.group("images")
def images() -> None:
    """The Lambda runtime and SAM build images, official or offline stand-ins.

    \b
    Stand-ins are for machines that cannot pull from public.ecr.aws: a Debian root
    with a local CPython build of the runtime's version (or, for the runtime image
    only, the python of the Debian suite that ships that version), tagged with the
    official names and labelled org.lambdakit.standin=true. They prove layout,
    Python ABI and bundled libraries, NOT glibc compatibility (Debian's glibc is
    newer than Lambda's): the static audit covers that. Another architecture than
    this machine's (arm64 on x86_64) runs through qemu, with the Debian suites'
    Pythons only: `lambdakit images list` shows what is present.
    """


@images.command("build-standins")
@click.option(
    "--runtime",
    "runtime_names",
    multiple=True,
    type=click.Choice(runtimes.runtime_names()),
    default=standin.DEFAULT_RUNTIMES,
    show_default=True,
    help="Runtime to build stand-ins for (repeatable). Its interpreter: a local CPython build of that "
    "version, else (runtime image only) the python of the Debian suite that ships it.",
)
@click.option(
    "--kind",
    type=click.Choice(["all", *standin.KINDS]),
    default="all",
    show_default=True,
    help="runtime: public.ecr.aws/lambda/python; build: public.ecr.aws/sam/build-python.",
)
@click.option(
    "--arch",
    "arches",
    multiple=True,
    type=click.Choice(runtimes.ARCHES),
    default=(host_arch(),),
    show_default="this machine's",
    help="Architecture (repeatable). Another than this machine's: runtime images only, with the "
    f"interpreter of the Debian suite that ships that Python ({standin.debian_pythons()}), run "
    "through qemu (scripts/ensure-docker.sh --arm64).",
)
@click.option(
    "--force",
    is_flag=True,
    help="Rebuild even when an up-to-date stand-in exists. The root filesystems stay cached "
    "(~/.cache/lambdakit/standin and lambdakit/standin-base images): remove them to refresh a suite.",
)
@click.option("-v", "--verbose", is_flag=True, help="Show debootstrap's and docker build's own output.")
def build_standins_command(
    runtime_names: tuple[str, ...], kind: str, arches: tuple[str, ...], force: bool, verbose: bool
) -> None:
    """Build offline stand-ins for the official images (cached; an official image is never replaced).

    Needs root, debootstrap and a Debian mirror the first time (a few minutes);
    later runs reuse the cached root filesystem and skip up-to-date images.
    """
    kinds = standin.KINDS if kind == "all" else tuple(k for k in standin.KINDS if k == kind)
    with user_errors(json_output=False):
        outcomes = standin.build_standins(
            runtime_names,
            kinds=kinds,
            arches=arches,
            force=force,
            progress=TerminalProgress(verbose=verbose),
        )
    for outcome in outcomes:
        timing = f" in {outcome.seconds:.0f}s" if outcome.status == "built" else ""
        colour = {"built": "green", "cached": None, "skipped": "yellow"}[outcome.status]
        click.secho(f"{outcome.status:<8} {outcome.image}{timing}  {outcome.detail}", fg=colour)


@images.command("list")
@JSON_OPTION
def list_command(json_output: bool) -> None:
    """Which runtime and build images are present, and which of them are stand-ins."""
    with user_errors(json_output):
        rows = standin.list_images()
    if json_output:
        document = [
            {
                "image": row.image,
                "kind": row.kind,
                "runtime": row.target.runtime,
                "arch": row.target.arch.name,
                "present": row.present,
                "standin": row.standin,
                "standin_facts": _standin_facts(row.labels),
            }
            for row in rows
        ]
        emit_json({"schema": 1, "images": document})
        return
    for row in rows:
        if not row.present:
            state, colour = "missing", "yellow"
        elif row.standin:
            state, colour = "stand-in", "cyan"
        else:
            state, colour = "official", "green"
        facts = _standin_facts(row.labels)
        detail = f"  ({facts['python']}; {facts['os']})" if row.standin else ""
        click.secho(f"{state:<9} {row.image}{detail}", fg=colour)


def _standin_facts(labels: dict[str, str]) -> dict[str, str]:
    """The org.lambdakit.standin.* labels, without the prefix."""
    prefix = STANDIN_LABEL + "."
    return {key.removeprefix(prefix): value for key, value in labels.items() if key.startswith(prefix)}
