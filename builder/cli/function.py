"""`package-function`: a plain function's validated zip, for create-function or update-function-code."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, get_args

import click

from builder import runtimes
from builder.build import BackendName
from builder.cli.options import IMPORT_CHECK_OPTION, JSON_OPTION, verdict_exit
from builder.cli.render import TerminalProgress, emit_json, render_imports, render_problems, user_errors
from builder.errors import EXIT_NOT_VERIFIED, EXIT_OK
from builder.function import (
    LEFT_OUT_ANYWHERE,
    LEFT_OUT_AT_TOP,
    FunctionPackageOptions,
    FunctionPackageResult,
    package_function,
)
from builder.progress import Silent
from builder.units import megabytes
from builder.verify import ImportCheckChoice

_LEFT_OUT = "\n".join(
    [f"  {name:<12} anywhere: {why}" for name, why in LEFT_OUT_ANYWHERE.items()]
    + [f"  {name + '/':<12} at the top: {why}" for name, why in LEFT_OUT_AT_TOP.items()]
)

HELP = f"""Write a validated Lambda function zip: the code in DIR plus its requirements,
resolved for --runtime and --arch, to hand to create-function or update-function-code.

\b
Examples:
  lambdakit package-function fn --runtime python3.12 --arch x86_64 --handler handler.handler
  lambdakit package-function . --runtime python3.11 --arch arm64 -r requirements-prod.txt
  aws lambda update-function-code --function-name fn \\
      --zip-file fileb://build/functions/fn-python3.12-x86_64.zip

The requirements (default DIR/requirements.txt when it lists anything; none is
fine) are resolved, slimmed and audited as build-layer does, cached in
build/functions/.deps. The code goes to the zip's root over them: a module or
package of DIR replaces a dependency of the same name whole (a warning says so).
The whole is validated as Lambda loads a function (its root on sys.path, as
/var/task): static audit, every top-level module imported, and with --handler the
handler's module imported and its function looked up. An invalid package is not
written (exit 1); one whose imports could not be checked here is not written
either (exit 3) unless --allow-unverified. The zip is deterministic (same inputs,
same sha256) and replaces a previous one with one rename: a failed or
interrupted run leaves it as it was.

\b
Never packaged from DIR:
{_LEFT_OUT}
  lambdakit's own output, when it lies inside DIR (build/functions/, --out)
"""


@click.command("package-function", help=HELP)
@click.argument("code", metavar="DIR", type=click.Path(path_type=Path))
@click.option(
    "--runtime",
    type=click.Choice(runtimes.runtime_names()),
    required=True,
    help="The function's Lambda Python runtime (its Runtime setting).",
)
@click.option(
    "--arch",
    type=click.Choice(runtimes.ARCHES),
    required=True,
    help="The function's architecture (its Architectures setting).",
)
@click.option(
    "-r",
    "--requirements",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Requirements file. Default: DIR/requirements.txt, when it exists and lists anything.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    help="The zip to write. Default: build/functions/<DIR's name>-<runtime>-<arch>.zip.",
)
@click.option(
    "--handler",
    help="The function's handler, MODULE.FUNCTION (e.g. handler.handler): its module is imported and "
    "the function looked up, as Lambda does before the first invocation.",
)
@click.option(
    "--backend",
    type=click.Choice(get_args(BackendName)),
    default="auto",
    show_default=True,
    help="How the requirements are resolved, as for build-layer: uv (wheels for the runtime, no Docker), "
    "pip, docker (the Lambda build image), auto (docker with the official build image, else uv).",
)
@IMPORT_CHECK_OPTION
@click.option(
    "--allow-unverified",
    is_flag=True,
    help="Write the zip and exit 0 when its imports could not be checked here (still reported NOT "
    "VERIFIED). Default: exit 3, nothing written.",
)
@JSON_OPTION
@click.option("-q", "--quiet", is_flag=True, help="No progress and no result; errors still go to stderr.")
@click.option("-v", "--verbose", is_flag=True, help="Show the resolver's own output.")
def package_function_command(
    code: Path,
    runtime: str,
    arch: str,
    requirements: Path | None,
    out: Path | None,
    handler: str | None,
    backend: BackendName,
    import_check: ImportCheckChoice,
    allow_unverified: bool,
    json_output: bool,
    quiet: bool,
    verbose: bool,
) -> None:
    interrupted = "interrupted: no zip was written; a previous zip at the output path is unchanged"
    with user_errors(json_output, interrupted=interrupted):
        options = FunctionPackageOptions(
            code=code,
            target=runtimes.target(runtime, arch),
            requirements=requirements,
            out=out,
            handler=handler,
            backend=backend,
            import_check=import_check,
            allow_unverified=allow_unverified,
        )
        progress = Silent() if (quiet or json_output) else TerminalProgress(verbose=verbose)
        result = package_function(options, progress)
    if json_output:
        emit_json(_document(result))
    elif not quiet:
        _render(result)
    for name in result.shadowed:
        click.secho(
            f"warning: {name} comes from DIR, not from the requirements: the function's own copy is what "
            "the zip holds and Lambda imports",
            fg="yellow",
            err=True,
        )
    if result.verdict == "not-verified":
        click.secho(
            "NOT VERIFIED: neither a runtime image nor a local interpreter could import-check the package"
            + ("" if allow_unverified else "; no zip was written (--allow-unverified writes it)"),
            fg="yellow",
            err=True,
        )
        sys.exit(EXIT_OK if allow_unverified else EXIT_NOT_VERIFIED)
    sys.exit(verdict_exit(result.verdict))


def _document(result: FunctionPackageResult) -> dict[str, Any]:
    return {
        "schema": 1,
        "ok": result.verdict == "valid",
        "verdict": result.verdict,
        "written": result.written,
        "path": str(result.zip_path),
        "sha256": result.sha256,
        "sizes": {"zipped": result.zipped_bytes, "unzipped": result.unzipped_bytes},
        "files": result.files,
        "runtime": result.report.target.runtime,
        "arch": result.report.target.arch.name,
        "requirements": str(result.requirements) if result.requirements else None,
        "dependencies": result.dependencies,
        "packages": result.packages,
        "backend_reason": result.backend_reason,
        "handler": handler.to_dict() if (handler := result.handler_outcome()) else None,
        "left_out": list(result.left_out),
        "shadowed": list(result.shadowed),
        "validation": result.report.to_dict(),
        "timings": result.timings,
    }


def _render(result: FunctionPackageResult) -> None:
    target = result.report.target
    verb = "Wrote" if result.written else "Not written:"
    click.secho(f"{verb} {result.zip_path} for {target.describe()}", bold=True)
    if result.requirements is None:
        click.echo("  dependencies: none (no requirements)")
    else:
        packages = ", ".join(f"{n} {v}" for n, v in result.packages.items())
        click.echo(f"  dependencies: {packages} from {result.requirements} ({result.dependencies})")
        if result.backend_reason:
            click.echo(f"  backend: {result.backend_reason}")
    if result.left_out:
        click.echo(f"  left out of the code: {', '.join(result.left_out)}")
    click.echo(f"  validation: {result.verdict} (as a function: static audit, imports)")
    render_problems(result.report.problems)
    render_imports(result.report.imports)
    if (handler := result.handler_outcome()) is not None:
        said = {
            "passed": "imports, and the function is there",
            "failed": "FAILED",
            "not-verified": "NOT VERIFIED",
        }
        where = f" in {handler.where}" if handler.where else f" ({handler.error})"
        click.echo(f"  handler {handler.spec}: {said[handler.status]}{where}")
    click.echo(
        f"  size: {megabytes(result.unzipped_bytes)} unzipped, {megabytes(result.zipped_bytes)} zipped, "
        f"{result.files} files"
    )
    click.echo(f"  sha256: {result.sha256}")
