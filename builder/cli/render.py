"""Rendering at the edge: lambdakit's errors, problems and import results as text or JSON."""

from __future__ import annotations

import errno
import json
import signal
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import click

from builder.errors import EnvironmentProblem, InvalidLayer, LambdakitError
from builder.problems import Problem
from builder.verify import ImportCheck


def emit_json(document: dict[str, Any]) -> None:
    click.echo(json.dumps(document, indent=2, sort_keys=True, default=str))


@contextmanager
def user_errors(json_output: bool, *, interrupted: str = "interrupted") -> Iterator[None]:
    """Render lambdakit's own errors without a traceback and exit with their code.

    An OSError that reaches here is this machine's (a full disk, a path under a file,
    no permission): an environment error, exit 2, never a traceback. Ctrl-C (130) and
    SIGTERM (143) print `interrupted`: what the command leaves behind.
    """
    try:
        yield
    except LambdakitError as err:
        render_error(err, json_output)
    except OSError as err:
        render_error(_environment_problem(err), json_output)
    except KeyboardInterrupt as interrupt:
        click.echo(interrupted, err=True)
        sys.exit(143 if isinstance(interrupt, Terminated) else 130)


def _environment_problem(err: OSError) -> EnvironmentProblem:
    where = f": {err.filename}" if err.filename else ""
    hint = {
        errno.ENOSPC: "free disk space (the build folder, the temporary folder) and run it again",
        errno.EACCES: "check the permissions of that path",
        errno.EROFS: "choose a writable location",
        errno.ENOTDIR: "a part of that path is a file, not a folder",
    }.get(err.errno or 0, "check that path")
    return EnvironmentProblem(f"{err.strerror or err}{where}", hint=hint)


def render_error(err: LambdakitError, json_output: bool) -> NoReturn:
    if json_output:
        emit_json({"ok": False, **err.to_dict()})
    else:
        click.secho(f"error: {err.message}", err=True, fg="red")
        if isinstance(err, InvalidLayer):
            render_problems(err.problems(), err=True)
        if err.hint:
            click.echo(f"hint: {err.hint}", err=True)
    sys.exit(err.exit_code)


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled as Ctrl-C is: every context manager (locks, containers, staging) unwinds."""


def terminate_as_interrupt() -> None:
    def handler(signum: int, frame: object) -> None:
        raise Terminated

    signal.signal(signal.SIGTERM, handler)


def render_problems(problems: Iterable[Problem], *, err: bool = False) -> None:
    for problem in problems:
        colour = "red" if problem.severity == "error" else "yellow"
        click.secho(f"  {problem.severity:<7} {problem.code:<20} {problem.path}", fg=colour, err=err)
        click.echo(f"          {problem.message}", err=err)
        click.echo(f"          hint: {problem.hint}", err=err)


def render_imports(imports: ImportCheck) -> None:
    if imports.status == "not-verified":
        click.secho(f"  imports: NOT VERIFIED ({imports.reason})", fg="yellow")
        return
    click.echo(f"  imports checked in {imports.where}:")
    for module, error in imports.modules.items():
        click.secho(
            f"    {module}: {'ok' if error is None else error}", fg="green" if error is None else "red"
        )


class TerminalProgress:
    """Step lines on stderr, with the time since the previous step; tool output only when verbose."""

    def __init__(self, *, verbose: bool) -> None:
        self.verbose = verbose
        self.started = time.perf_counter()

    def step(self, name: str, detail: str = "") -> None:
        elapsed = time.perf_counter() - self.started
        click.secho(f"[{elapsed:6.1f}s] {name:<9} {detail}", err=True, fg="cyan")

    def output(self, line: str) -> None:
        if self.verbose:
            click.echo(f"           {line}", err=True)
