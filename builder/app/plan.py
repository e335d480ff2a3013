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

from builder.app.destination import DEFAULT_LOCALSTACK_URL, Destination
from builder.app.localstack_info import (
    LOCALSTACK_CREDENTIALS,
    LOCALSTACK_REGION,
    LocalStackInfo,
)
from builder.app.samconfig import SamEnvironment, read_samconfig
from builder.app.template import AppTemplate, read_template
from builder.errors import EnvironmentProblem, UsageError

BUILD_TIMEOUT_S = 1800
DEPLOY_TIMEOUT_S = 1800
SAM_ENV = {"SAM_CLI_TELEMETRY": "0"}


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


def configured_region(destination: Destination, environment: SamEnvironment | None) -> str | None:
    """The one rule every command follows: samconfig's region, else LocalStack's default, else
    AWS_REGION (or AWS_DEFAULT_REGION); None when nothing names one for AWS."""
    if environment is not None and environment.region:
        return environment.region
    if destination == "localstack":
        return LOCALSTACK_REGION
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None


def destination_region(destination: Destination, environment: SamEnvironment) -> str:
    region = configured_region(destination, environment)
    if not region:
        raise UsageError(
            f"no region for samconfig environment {environment.name!r}",
            hint="set region in samconfig.toml or AWS_REGION",
        )
    return region


# A parameter that says it holds a password carries one in plain text into CloudFormation's
# history; one that names where a password is kept (DbPasswordSecretArn) is what to do instead.
_REFERENCE_WORDS = ("secret", "arn", "name", "param", "ssm")


def _names_a_password(key: str) -> bool:
    lowered = key.lower()
    return "password" in lowered and not any(word in lowered for word in _REFERENCE_WORDS)


def deploy_parameters(
    environment: SamEnvironment, hooked: Mapping[str, str] = {}, given: Mapping[str, str] = {}
) -> dict[str, str]:
    """samconfig's parameter overrides, then the project hook's (hooks.py), then the command line's."""
    parameters = dict(environment.parameters) | dict(hooked) | dict(given)
    leaked = sorted(key for key in parameters if _names_a_password(key))
    if leaked:
        raise UsageError(
            f"parameter overrides carry a password ({', '.join(leaked)})",
            hint="keep it in a Secrets Manager secret and pass the secret's name as a parameter",
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
    hooked: Mapping[str, str] = {},
    tool: Callable[[str], str | None] = find_tool,
) -> DeployPlan:
    """The commands for one deploy, without running anything; hooked: the project hook's parameters."""
    if options.no_execute_changeset and options.destination == "localstack":
        raise UsageError("--no-execute-changeset is for --target aws", hint="drop it for LocalStack")
    if (options.destination == "localstack") != (localstack is not None):
        raise ValueError("a LocalStack deploy needs the detected LocalStack, an AWS deploy none")
    project = options.project
    environment = read_samconfig(project / "samconfig.toml", options.config_env)
    region = destination_region(options.destination, environment)
    parameters = deploy_parameters(environment, hooked, dict(options.parameters))
    app = read_template(project / "template.yaml", parameters)
    sam, lambdakit = _tools(tool)
    # The Makefiles read these: SAM passes neither runtime nor architecture to make. With
    # functions on several targets, each Makefile's own defaults apply.
    single = app.single_target
    build_env = {"RUNTIME": single.runtime, "ARCH": single.arch.name} if single else {}
    build = Command(
        step="sam build",
        argv=(sam, "build", "--template-file", app.path.name, "--config-env", environment.name),
        cwd=project,
        env={**build_env, "LAMBDAKIT": lambdakit, **SAM_ENV},
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
