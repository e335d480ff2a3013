"""A project's own deploy step: what lambdakit cannot know about one application.

`lambdakit.toml` at the project root may name a program that `deploy` runs first,
before anything is built:

    [deploy]
    before = "scripts/deploy_hook.py"     # a .py file runs with lambdakit's own Python (boto3 is there)

It runs from the project root with the deploy's facts in its environment
(HOOK_ENVIRONMENT below; on LocalStack also AWS_ENDPOINT_URL and LocalStack's dummy
credentials), and prints template parameter overrides on stdout, one NAME=VALUE per
line. They win over samconfig.toml's; `deploy --parameter` wins over both. What it
writes on stderr is shown as the deploy's progress. A non-zero exit stops the deploy
before the build: a secret to create, a host to point at, what only the application knows.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from builder.errors import DeployFailed, UsageError

CONFIG_FILE = "lambdakit.toml"
HOOK_TIMEOUT_S = 600
HOOK_ENVIRONMENT = (
    "LAMBDAKIT_DESTINATION",  # localstack or aws
    "LAMBDAKIT_REGION",
    "LAMBDAKIT_STACK_NAME",
    "LAMBDAKIT_PARAMETERS",  # JSON: samconfig's parameter overrides, then deploy --parameter
    "LAMBDAKIT_LOCALSTACK_IN_DOCKER",  # "1" when LocalStack runs in a container, "0" on this host
    "LAMBDAKIT_BRIDGE_ADDRESS",  # this host on Docker's default bridge, when LocalStack runs here
)
_OVERRIDE = re.compile(r"^(?P<name>[A-Za-z][A-Za-z0-9]*)=(?P<value>.*)$")


@dataclass(frozen=True, kw_only=True)
class HookContext:
    destination: str
    region: str
    stack_name: str
    parameters: Mapping[str, str]
    endpoint_url: str | None = None  # LocalStack's; None on AWS
    credentials: Mapping[str, str] | None = None  # LocalStack's dummy keys
    localstack_in_docker: bool = False
    bridge_address: str | None = None

    def environment(self) -> dict[str, str]:
        values = dict(
            zip(
                HOOK_ENVIRONMENT,
                (
                    self.destination,
                    self.region,
                    self.stack_name,
                    json.dumps(dict(self.parameters), sort_keys=True),
                    "1" if self.localstack_in_docker else "0",
                    self.bridge_address or "",
                ),
                strict=True,
            )
        )
        if self.endpoint_url is not None:
            values |= {"AWS_ENDPOINT_URL": self.endpoint_url, "AWS_DEFAULT_REGION": self.region}
            values |= dict(self.credentials or {})
        return values


@dataclass(frozen=True, kw_only=True)
class HookResult:
    command: tuple[str, ...]
    parameters: dict[str, str]
    messages: tuple[str, ...]  # its stderr lines


def before_hook(project: Path) -> str | None:
    """The `[deploy] before` of the project's lambdakit.toml; None without one."""
    path = project / CONFIG_FILE
    if not path.is_file():
        return None
    try:
        config = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise UsageError(f"cannot read {path}: {err}", hint="fix its TOML syntax", step="hook") from err
    section = config.get("deploy", {})
    if not isinstance(section, dict):
        raise UsageError(
            f"{path}: deploy is not a table", hint="write [deploy] and its keys under it", step="hook"
        )
    hook = section.get("before")
    if hook is None:
        return None
    if not isinstance(hook, str) or not hook.strip():
        raise UsageError(
            f"{path}: deploy.before must be a command (a string)",
            hint='e.g. before = "scripts/deploy_hook.py"',
            step="hook",
        )
    return hook


def hook_command(project: Path, hook: str) -> tuple[str, ...]:
    try:
        argv = shlex.split(hook)
    except ValueError as err:  # an unclosed quote
        raise UsageError(
            f"{CONFIG_FILE}: deploy.before {hook!r}: {err}", hint="fix its quoting", step="hook"
        ) from err
    if argv[0].endswith(".py"):
        script = project / argv[0]
        if not script.is_file():
            raise UsageError(
                f"the deploy hook {argv[0]} ({CONFIG_FILE}) does not exist in {project}",
                hint="fix deploy.before, or create the script",
                step="hook",
            )
        return (sys.executable, str(script), *argv[1:])
    return tuple(argv)


def run_before_hook(project: Path, hook: str, context: HookContext) -> HookResult:
    """Run the project's hook; the parameter overrides it printed."""
    command = hook_command(project, hook)
    try:
        proc = subprocess.run(
            command,
            cwd=project,
            env={**os.environ, **context.environment()},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=HOOK_TIMEOUT_S,
            check=False,
        )
    except (FileNotFoundError, PermissionError) as err:
        raise UsageError(
            f"cannot run the deploy hook {hook!r}: {err}", hint="fix deploy.before", step="hook"
        ) from err
    except subprocess.TimeoutExpired as err:
        raise DeployFailed(
            f"the deploy hook {hook!r} did not finish in {HOOK_TIMEOUT_S}s", step="hook"
        ) from err
    messages = tuple(line for line in proc.stderr.splitlines() if line.strip())
    if proc.returncode != 0:
        said = "; ".join(messages[-5:]) or "no message"
        raise DeployFailed(
            f"the deploy hook {hook!r} failed (exit {proc.returncode}): {said}",
            hint=f"it runs before anything is built (see {CONFIG_FILE}); nothing was deployed",
            step="hook",
        )
    parameters = {}
    for line in proc.stdout.splitlines():
        if not line.strip():
            continue
        match = _OVERRIDE.match(line.strip())
        if match is None:
            raise DeployFailed(
                f"the deploy hook {hook!r} printed {line.strip()!r}, not a NAME=VALUE parameter override",
                hint="print parameter overrides on stdout and everything else on stderr",
                step="hook",
            )
        parameters[match["name"]] = match["value"]
    return HookResult(command=command, parameters=parameters, messages=messages)
