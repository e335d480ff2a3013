"""A deploy planned without running anything: the commands as argv lists, the parameters, the notes.

The plan can be shown before anything runs (deploy --json prints it); deploy.py runs it.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml

from builder.app.localstack_info import (
    DEFAULT_LOCALSTACK_URL,
    LOCALSTACK_CREDENTIALS,
    LOCALSTACK_REGION,
    LocalStackInfo,
)
from builder.app.samconfig import SamEnvironment, read_samconfig
from builder.app.template import AppTemplate, read_template
from builder.errors import EnvironmentProblem, UsageError

# Where an app is deployed (--target): not a builder.runtimes.Target, which is a runtime and architecture.
Destination = Literal["localstack", "aws"]
DESTINATIONS: tuple[Destination, ...] = ("localstack", "aws")
SAM_BUILD_DIR = Path(".aws-sam") / "build"
BUILD_TIMEOUT_S = 1800
DEPLOY_TIMEOUT_S = 1800
SAM_ENV = {"SAM_CLI_TELEMETRY": "0"}
# The template parameters holding database settings (template.yaml); the
# password is only ever in the secret that DbSecretName names.
DB_HOST_PARAM = "DbHost"
DB_SECRET_PARAM = "DbSecretName"


@dataclass(frozen=True, kw_only=True)
class Command:
    step: str
    argv: tuple[str, ...]
    cwd: Path
    env: dict[str, str] = field(default_factory=dict)  # added to the caller's environment
    timeout_s: int = DEPLOY_TIMEOUT_S
    # Attached to the terminal: sam asks the user to confirm an AWS change set.
    interactive: bool = False

    def shell(self) -> str:
        """How a user would type it; credentials shown as names only."""
        shown = {k: ("***" if "SECRET" in k else v) for k, v in self.env.items()}
        return " ".join([*(f"{k}={shlex.quote(v)}" for k, v in shown.items()), *map(shlex.quote, self.argv)])


@dataclass(frozen=True, kw_only=True)
class DeployOptions:
    destination: Destination
    config_env: str
    project: Path = Path()
    endpoint_url: str = DEFAULT_LOCALSTACK_URL
    no_execute_changeset: bool = False
    # Template parameters given on the command line; they win over samconfig.toml's.
    parameters: tuple[tuple[str, str], ...] = ()
    # Deploy function packages without validating them: only to reproduce a broken deploy.
    unsafe_skip_validation: bool = False


@dataclass(frozen=True, kw_only=True)
class DeployPlan:
    destination: Destination
    app: AppTemplate
    environment: SamEnvironment
    region: str
    parameters: dict[str, str]  # what --parameter-overrides passes, samconfig's merged with lambdakit's
    merge_layers: bool
    build: Command
    deploy: Command
    notes: tuple[str, ...]

    def to_dict(self) -> dict[str, object]:
        return {
            "target": self.destination,  # the CLI option's name: deploy --json readers know it as that
            "config_env": self.environment.name,
            "stack_name": self.environment.stack_name,
            "region": self.region,
            "parameters": self.parameters,
            "merge_layers": self.merge_layers,
            "commands": [
                {"step": c.step, "argv": list(c.argv), "env": c.env, "cwd": str(c.cwd)}
                for c in (self.build, self.deploy)
            ],
            "notes": list(self.notes),
        }


def find_tool(name: str) -> str | None:
    """An executable next to this Python (a venv that is not activated), else on PATH."""
    sibling = Path(sys.executable).with_name(name)
    if sibling.is_file() and os.access(sibling, os.X_OK):
        return str(sibling)
    return shutil.which(name)


def destination_region(destination: Destination, environment: SamEnvironment) -> str:
    if destination == "localstack":
        return environment.region or LOCALSTACK_REGION
    region = environment.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if not region:
        raise UsageError(
            f"no region for samconfig environment {environment.name!r}",
            hint="set region in samconfig.toml or AWS_REGION",
        )
    return region


def compose_db_service(compose_file: Path) -> str | None:
    """The docker-compose service running PostgreSQL: its name is its host name on the network."""
    if not compose_file.is_file():
        return None
    services = (yaml.safe_load(compose_file.read_text()) or {}).get("services", {})
    return next(
        (name for name, spec in services.items() if str(spec.get("image", "")).startswith("postgres")), None
    )


def db_parameters(
    environment: SamEnvironment,
    project: Path,
    localstack: LocalStackInfo | None,
    given: Mapping[str, str] = {},
) -> dict[str, str]:
    """samconfig's parameter overrides, then the database host for the destination, then the
    parameters given on the command line; the database settings checked."""
    parameters = dict(environment.parameters)
    if localstack is not None and not localstack.in_docker:
        # Its Lambda containers are on Docker's default bridge, where this host has this address;
        # without a Docker engine to ask, samconfig's value stays (deploy's notes say so).
        if localstack.bridge_address:
            parameters[DB_HOST_PARAM] = localstack.bridge_address
    elif localstack is not None and (service := compose_db_service(project / "docker-compose.yml")):
        # Lambda containers on the compose network reach the database by its service name.
        parameters[DB_HOST_PARAM] = service
    parameters |= given
    if not parameters.get(DB_SECRET_PARAM):
        raise UsageError(
            f"samconfig environment {environment.name!r} names no database secret ({DB_SECRET_PARAM})",
            hint=f"add {DB_SECRET_PARAM}=<secret name> to its parameter_overrides",
            step="plan",
        )
    leaked = sorted(key for key in parameters if "password" in key.lower())
    if leaked:
        raise UsageError(
            f"parameter overrides carry a password ({', '.join(leaked)})",
            hint=f"put it in a Secrets Manager secret and pass its name as {DB_SECRET_PARAM}",
            step="plan",
        )
    return parameters


def _tools(tool: Callable[[str], str | None]) -> tuple[str, str]:
    sam = tool("sam")
    if sam is None:
        raise EnvironmentProblem("sam is not installed", hint="pip install aws-sam-cli", step="plan")
    lambdakit = tool("lambdakit")
    if lambdakit is None:
        raise EnvironmentProblem(
            "lambdakit is not installed where the Makefiles `sam build` runs can find it",
            hint="pip install -e .",
            step="plan",
        )
    return sam, lambdakit


def plan_deploy(
    options: DeployOptions,
    *,
    localstack: LocalStackInfo | None,
    tool: Callable[[str], str | None] = find_tool,
) -> DeployPlan:
    """The commands for one deploy, without running anything."""
    if options.no_execute_changeset and options.destination == "localstack":
        raise UsageError("--no-execute-changeset is for --target aws", hint="drop it for LocalStack")
    if (options.destination == "localstack") != (localstack is not None):
        raise ValueError("a LocalStack deploy needs the detected LocalStack, an AWS deploy none")
    project = options.project
    environment = read_samconfig(project / "samconfig.toml", options.config_env)
    region = destination_region(options.destination, environment)
    parameters = db_parameters(environment, project, localstack, dict(options.parameters))
    app = read_template(project / "template.yaml", parameters)
    target = app.target
    sam, lambdakit = _tools(tool)
    build = Command(
        step="sam build",
        argv=(sam, "build", "--template-file", app.path.name, "--config-env", environment.name),
        cwd=project,
        # The Makefiles read these: SAM passes neither runtime nor architecture to make.
        env={"RUNTIME": target.runtime, "ARCH": target.arch.name, "LAMBDAKIT": lambdakit, **SAM_ENV},
        timeout_s=BUILD_TIMEOUT_S,
    )
    argv = [sam, "deploy", "--config-env", environment.name, "--region", region]
    env = dict(SAM_ENV)
    notes: list[str] = []
    merge = False
    if localstack is not None:
        samlocal = tool("samlocal")
        if samlocal is not None:
            argv[0] = samlocal
            env["DISABLE_DEPRECATION_NOTICE"] = "1"
        else:
            notes.append("samlocal is not installed: sam deploy with AWS_ENDPOINT_URL does the same here")
        env |= {"AWS_ENDPOINT_URL": localstack.url, **LOCALSTACK_CREDENTIALS}
        # Never ask: a local stack is thrown away, not reviewed.
        argv += ["--no-confirm-changeset", "--no-fail-on-empty-changeset"]
        merge = bool(app.layers) and not localstack.applies_layers
        if merge:
            notes.append(
                f"LocalStack {localstack.edition} does not apply layers: their content is copied into "
                "each function package that uses them"
            )
        if not localstack.http_api:
            notes.append("LocalStack has no HTTP API emulation: the API is reached by invoking its function")
        if not localstack.in_docker and not localstack.bridge_address:
            notes.append(
                f"LocalStack runs on this host but no Docker engine answers here: {DB_HOST_PARAM} stays "
                f"{parameters.get(DB_HOST_PARAM)!r} (pass --parameter {DB_HOST_PARAM}=... if its functions "
                "cannot reach that)"
            )
    elif options.no_execute_changeset:
        argv.append("--no-execute-changeset")
        notes.append("--no-execute-changeset: the change set is created for review and not executed")
    if options.unsafe_skip_validation:
        notes.append(
            "--unsafe-skip-validation: function packages are deployed WITHOUT validation; "
            "they may fail on Lambda with errors lambdakit would have caught"
        )
    argv += ["--parameter-overrides", *(f"{key}={value}" for key, value in parameters.items())]
    deploy_command = Command(
        step="sam deploy",
        argv=tuple(argv),
        cwd=project,
        env=env,
        # samconfig's confirm_changeset prompt must reach the user.
        interactive=localstack is None and not options.no_execute_changeset,
    )
    return DeployPlan(
        destination=options.destination,
        app=app,
        environment=environment,
        region=region,
        parameters=parameters,
        merge_layers=merge,
        build=build,
        deploy=deploy_command,
        notes=tuple(notes),
    )
