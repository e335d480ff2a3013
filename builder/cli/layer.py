"""`build-layer` and `runtimes`: build a layer for one target or many, and the catalogue."""

from __future__ import annotations

import os
import sys
from collections import Counter
from pathlib import Path
from typing import Any, NoReturn, get_args

import click
from click.core import ParameterSource

from builder import runtimes
from builder.build import BackendName, BuildOptions, BuildResult, build_layer
from builder.cli.options import (
    IMPORT_CHECK_OPTION,
    JSON_OPTION,
    ChoiceList,
    flat_choices,
    verdict_exit,
)
from builder.cli.render import TerminalProgress, emit_json, render_imports, render_problems, user_errors
from builder.errors import EXIT_NOT_VERIFIED, EXIT_OK, UsageError
from builder.matrix import TargetOutcome, build_matrix, rank, target_out, worst_exit
from builder.progress import Silent
from builder.recipes import RequirementsSource, requirements_for
from builder.runtimes import Target
from builder.store import DEFAULT_OUT, export
from builder.units import megabytes
from builder.verify import ImportCheckChoice

INTERRUPTED_BUILD = "interrupted: nothing was published; the previous layer is unchanged"


@click.command("build-layer")
@click.argument("name", default="psycopg2")
@click.option(
    "-r",
    "--requirements",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Requirements file. Default: layers/NAME/requirements.txt if it exists, else the built-in "
    "recipe NAME (see `lambdakit layers`).",
)
@click.option(
    "-p",
    "--package",
    "packages",
    multiple=True,
    metavar="SPEC",
    help="A requirement (repeatable), e.g. -p numpy -p 'pydantic>=2': the layer is made of these, "
    "without a requirements file. Not with -r.",
)
@click.option(
    "--runtime",
    "runtime_names",
    type=ChoiceList(runtimes.runtime_names()),
    multiple=True,
    default=[runtimes.DEFAULT_RUNTIME],
    show_default=True,
    help="Lambda Python runtime the layer is for; a list (python3.11,python3.12) or all builds each "
    "runtime x arch in parallel into OUT/<runtime>-<arch>/NAME and prints one table.",
)
@click.option(
    "--arch",
    "arch_names",
    type=ChoiceList(runtimes.ARCHES),
    multiple=True,
    default=[runtimes.DEFAULT_ARCH],
    show_default=True,
    help="Lambda architecture the layer is for; a list (x86_64,arm64) or all, as for --runtime.",
)
@click.option(
    "--backend",
    type=click.Choice(get_args(BackendName)),
    default="auto",
    show_default=True,
    help="uv: resolve only wheels the runtime loads, markers evaluated for the runtime (no Docker). "
    "pip: the same with every manylinux tag up to the runtime's glibc, but markers evaluated for this "
    "host. docker: build in the Lambda build image. auto: docker when its engine and the official build "
    "image are available, else uv.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    default=DEFAULT_OUT,
    show_default=True,
    help="Where OUT/NAME/{tree/,NAME.zip,layer.json} is published.",
)
@click.option(
    "--no-validate", is_flag=True, help="Publish without audit or import check (marked unvalidated)."
)
@IMPORT_CHECK_OPTION
@click.option("--force", is_flag=True, help="Rebuild even when the inputs are unchanged.")
@click.option(
    "--allow-unverified",
    is_flag=True,
    help="Exit 0 and export when the layer is published but its import could not be checked here "
    "(still reported NOT VERIFIED and recorded in layer.json). Default: exit 3, nothing exported.",
)
@click.option(
    "--export",
    "export_dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Also copy the layer tree (python/...) into this directory, e.g. SAM's $(ARTIFACTS_DIR).",
)
@click.option(
    "--export-function",
    "export_function_dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Also copy the packages (the contents of python/) into this directory, as a function package.",
)
@JSON_OPTION
@click.option(
    "-q",
    "--quiet",
    is_flag=True,
    help="No progress and no result; errors still go to stderr, and the exit code says how it went.",
)
@click.option(
    "-v",
    "--verbose",
    is_flag=True,
    help="Show the resolver's own output (one target only: a matrix shows a line per target).",
)
def build_layer_command(
    name: str,
    requirements: Path | None,
    packages: tuple[str, ...],
    runtime_names: tuple[tuple[str, ...], ...],
    arch_names: tuple[tuple[str, ...], ...],
    backend: BackendName,
    out: Path,
    no_validate: bool,
    import_check: ImportCheckChoice,
    force: bool,
    allow_unverified: bool,
    export_dir: Path | None,
    export_function_dir: Path | None,
    json_output: bool,
    quiet: bool,
    verbose: bool,
) -> None:
    """Build the layer NAME (default: psycopg2) for a runtime and architecture, or for several.

    \b
    Examples:
      lambdakit build-layer                          # psycopg2, python3.12, x86_64
      lambdakit build-layer psycopg2                 # in any folder: the built-in recipe
      lambdakit build-layer deps -p numpy -p 'pydantic>=2'   # an ad-hoc layer, no file
      lambdakit build-layer psycopg2 --runtime python3.11 --arch arm64
      lambdakit build-layer mydeps -r requirements.txt --runtime python3.13 --json
      lambdakit build-layer psycopg2 --runtime all --arch all   # every target, one table

    \b
    The requirements come from the first of:
      -r FILE, or -p SPEC (repeatable)
      layers/NAME/requirements.txt in this folder (a project's own layer)
      the built-in recipe NAME, pinned to releases proven on every runtime
      and architecture (`lambdakit layers` lists them)

    The layer is resolved, slimmed, zipped, audited and import-checked, then
    published atomically; an invalid layer is never published. Unchanged inputs
    are not rebuilt.
    """
    with user_errors(json_output):
        if packages and click.get_current_context().get_parameter_source("name") is ParameterSource.DEFAULT:
            # Without a name the ad-hoc layer would replace the psycopg2 layer in OUT.
            raise UsageError("-p needs a layer name", hint="name it: lambdakit build-layer NAME -p SPEC ...")
        source = requirements_for(name, requirements=requirements, packages=packages, project=Path("."))
    targets = [runtimes.target(r, a) for r in flat_choices(runtime_names) for a in flat_choices(arch_names)]
    if len(targets) > 1:
        flags = ["--force"] * force + ["--no-validate"] * no_validate
        _build_matrix(name, source, targets, out=out, json_output=json_output, quiet=quiet,
                      allow_unverified=allow_unverified, exports=bool(export_dir or export_function_dir),
                      options=[f"--backend={backend}", f"--import-check={import_check}", *flags])  # fmt: skip
    [target] = targets
    with user_errors(json_output, interrupted=INTERRUPTED_BUILD), source.file() as requirements_file:
        options = BuildOptions(
            name=name,
            requirements=requirements_file,
            target=target,
            out=out,
            backend=backend,
            validate=not no_validate,
            import_check=import_check,
            force=force,
        )
        progress = Silent() if (quiet or json_output) else TerminalProgress(verbose=verbose)
        result = build_layer(options, progress)
        # An export is what SAM or a deploy picks up: a layer nobody import-checked goes there
        # only when the user said so.
        exporting = result.verdict != "not-verified" or allow_unverified
        if export_dir is not None and exporting:
            export(result.path, export_dir, function_package=False)
        if export_function_dir is not None and exporting:
            export(result.path, export_function_dir, function_package=True)
    if json_output:
        emit_json(_build_document(result, source))
    elif not quiet:
        _render_build(result, source)
    if result.verdict == "not-verified":
        withheld = "" if allow_unverified or not (export_dir or export_function_dir) else "; not exported"
        click.secho(
            "NOT VERIFIED: published, but neither a runtime image nor a local interpreter could "
            f"import-check it{withheld}" + ("" if allow_unverified else " (--allow-unverified accepts that)"),
            fg="yellow",
            err=True,
        )
        sys.exit(EXIT_OK if allow_unverified else EXIT_NOT_VERIFIED)
    sys.exit(verdict_exit(result.verdict))


def _build_matrix(
    name: str,
    source: RequirementsSource,
    targets: list[Target],
    *,
    out: Path,
    json_output: bool,
    quiet: bool,
    allow_unverified: bool,
    exports: bool,
    options: list[str],
) -> NoReturn:

    interrupted = "interrupted: targets that finished are published; every other keeps its previous layer"
    with user_errors(json_output, interrupted=interrupted):
        if exports:
            raise UsageError(
                "--export and --export-function take one target's layer, not a matrix's",
                hint="export one runtime and arch at a time (its layer is in OUT/<runtime>-<arch>/NAME)",
            )
        # Every target builds from what this process chose: the same file, or the same -p specs.
        if source.path is None:
            requirements = [arg for spec in source.packages for arg in ("-p", spec)]
        else:
            requirements = ["-r", str(source.path.resolve())]

        def argv_for(t: Target) -> list[str]:
            return ["build-layer", name, *requirements, "--runtime", t.runtime,
                    "--arch", t.arch.name, "--out", str(target_out(out, t)), *options]  # fmt: skip

        def on_done(outcome: TargetOutcome) -> None:
            if not (quiet or json_output):
                t = outcome.target
                click.echo(
                    f"  {t.runtime} {t.arch.name}: {outcome.verdict} ({outcome.seconds:.1f}s)", err=True
                )

        jobs = min(len(targets), os.cpu_count() or 1)
        if not (quiet or json_output):
            click.echo(
                f"building {name} for {len(targets)} targets, {jobs} at a time "
                f"(requirements: {source.description})",
                err=True,
            )
        outcomes = build_matrix(targets, argv_for, jobs=jobs, on_done=on_done)
    code = worst_exit(outcomes, allow_unverified=allow_unverified)
    if json_output:
        emit_json({"schema": 1, "ok": code == EXIT_OK, "requirements": source.to_dict(),
                   "targets": [o.to_dict() for o in outcomes]})  # fmt: skip
    elif not quiet:
        _render_matrix(outcomes)
    sys.exit(code)


def _render_matrix(outcomes: list[TargetOutcome]) -> None:

    colour = {"valid": "green", "unvalidated": "yellow", "not-verified": "yellow"}
    click.echo(f"{'target':<18} {'verdict':<13} {'zipped':>8}  proven in (or why not)")
    for o in outcomes:
        size = megabytes(o.zipped_bytes) if o.zipped_bytes is not None else "-"
        target = f"{o.target.runtime} {o.target.arch.name}"
        click.secho(f"{target:<18} {o.verdict:<13} {size:>8}  {o.where}", fg=colour.get(o.verdict, "red"))
    counts = Counter(o.verdict for o in outcomes)
    ranked = sorted(counts, key=rank)
    click.echo(", ".join(f"{counts[v]} {v}" for v in ranked) + f" of {len(outcomes)} targets")


def _build_document(result: BuildResult, source: RequirementsSource) -> dict[str, Any]:
    manifest = {k: v for k, v in result.manifest.to_dict().items() if k != "files"}
    return {
        "ok": result.verdict in ("valid", "unvalidated"),
        "status": result.status,
        "requirements": source.to_dict(),
        "path": str(result.path),
        "zip": str(result.zip_path),
        "backend_reason": result.backend_reason,
        "timings": result.timings,
        "manifest": manifest,
    }


def _render_build(result: BuildResult, source: RequirementsSource) -> None:
    m = result.manifest
    verb = "Built" if result.status == "built" else "Up to date:"
    click.secho(f"{verb} {result.name} for {m.runtime} {m.arch} ({m.os_name}) with {m.backend}", bold=True)
    click.echo(f"  requirements: {source.description}")
    if result.backend_reason:
        click.echo(f"  backend: {result.backend_reason}")
    packages = ", ".join(f"{n} {v}" for n, v in m.packages.items())
    click.echo(f"  packages: {packages}")
    click.echo(
        f"  size: {megabytes(m.sizes.unzipped)} unzipped, {megabytes(m.sizes.zipped)} zipped "
        f"(slim removed {m.slim.removed_files} files, {megabytes(m.slim.bytes_saved)})"
    )
    click.echo(f"  glibc: needs {m.highest_glibc_needed or 'none'}, runtime has {m.runtime_glibc}")
    if m.validation is None:
        click.secho("  validation: SKIPPED (--no-validate)", fg="yellow")
    else:
        click.echo(f"  validation: {m.validation.verdict}")
        render_problems(m.validation.problems)
        render_imports(m.validation.imports)
    click.echo(f"  zip: {result.zip_path}")
    click.echo(f"  sha256: {m.zip.sha256}")


@click.command("runtimes")
@JSON_OPTION
def runtimes_command(json_output: bool) -> None:
    """List the runtimes and architectures lambdakit knows, with their facts."""
    rows = [
        {
            "runtime": t.runtime,
            "arch": t.arch.name,
            "os": t.os_name,
            "glibc": t.glibc_text,
            "deprecated": t.deprecated,
            "build_image": t.build_image,
            "runtime_image": t.runtime_image,
            "platform_tags": list(t.platform_tags),
            "uv_platform": t.uv_platform,
            "marker_environment": t.marker_environment,
        }
        for t in runtimes.all_targets()
    ]
    if json_output:
        emit_json({"schema": 1, "runtimes": rows})
        return
    for row in rows:
        note = " (deprecated)" if row["deprecated"] else ""
        click.echo(f"{row['runtime']:<11} {row['arch']:<7} {row['os']:<18} glibc {row['glibc']}{note}")
