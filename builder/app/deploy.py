"""deploy: validate what will run, then `sam build` and `sam deploy` to LocalStack or AWS.

The flow is facts -> plan -> run: the template and samconfig.toml are read into
frozen facts, the target is probed (LocalStack's edition decides whether layers
are applied), the commands are planned as argv lists that can be shown before
anything runs, then they run with the checks between them:

  build layers (lambdakit) -> sam build -> [merge layers into function packages]
  -> validate function packages -> DB secret -> sam deploy -> stack outputs

LocalStack Community accepts layers but does not apply them when a function
runs, so the layer's content is copied into each function package that uses it
(function files win, as /var/task comes before /opt/python on Lambda).
"""

from __future__ import annotations

import dataclasses
import filecmp
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
import tomllib
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import boto3
import botocore.config
import botocore.exceptions
import docker.errors
import yaml

from builder import runtimes
from builder.build import BuildOptions, build_layer
from builder.docker import container
from builder.errors import DeployFailed, EnvironmentProblem, InvalidLayer, UsageError
from builder.layout import LIB_DIR, PYTHON_DIR, import_entries, namespace_portion
from builder.progress import Progress, run_streamed
from builder.runtimes import Target
from builder.store import DEFAULT_OUT, TREE_DIR
from builder.validate import ValidationReport, function_tree, validate_tree

TargetName = Literal["localstack", "aws"]
TARGETS: tuple[TargetName, ...] = ("localstack", "aws")
SCHEMA = 1

DEFAULT_LOCALSTACK_URL = "http://127.0.0.1:4566"
# What LocalStack reports in /_localstack/info for editions that apply layers.
PAID_EDITIONS = frozenset({"pro", "enterprise", "ultimate", "team"})
SAM_BUILD_DIR = Path(".aws-sam") / "build"
BUILD_TIMEOUT_S = 1800
DEPLOY_TIMEOUT_S = 1800
PROBE_TIMEOUT_S = 3.0
FUNCTION_ACTIVE_TIMEOUT_S = 120.0
# An idle function on AWS becomes Inactive and is started again on its next invocation.
RUNNABLE_STATES = frozenset({"Active", "Inactive"})
# Dummy credentials LocalStack accepts; real ones must never reach it by accident.
LOCALSTACK_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}
LOCALSTACK_REGION = "us-east-1"
SAM_ENV = {"SAM_CLI_TELEMETRY": "0"}
# The template parameters holding database settings (template.yaml); the
# password is only ever in the secret that DbSecretName names.
DB_HOST_PARAM = "DbHost"
DB_SECRET_PARAM = "DbSecretName"


# --- facts ------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class LocalStackInfo:
    url: str
    version: str
    edition: str  # as LocalStack reports it: community, pro, ... ("unknown" when run from source)
    license_active: bool
    services: tuple[str, ...]
    # Run in a container (docker compose) or on this host (scripts/localstack.sh): a host-run
    # LocalStack's Lambda containers sit on Docker's default bridge.
    in_docker: bool = True
    # This host's address on that bridge, where a host-run LocalStack's functions reach this host.
    bridge_address: str | None = None

    @property
    def applies_layers(self) -> bool:
        return self.license_active or self.edition in PAID_EDITIONS

    @property
    def http_api(self) -> bool:
        """Whether API Gateway v2 (the template's HttpApi) is emulated."""
        return "apigatewayv2" in self.services

    def describe(self) -> str:
        layers = "applies layers" if self.applies_layers else "does not apply layers"
        api = "emulates HTTP APIs" if self.http_api else "no HTTP API emulation"
        if self.in_docker:
            where = "in Docker"
        elif self.bridge_address:
            where = f"on this host (its functions reach it at {self.bridge_address})"
        else:
            where = "on this host (no Docker engine here to tell its functions' address for it)"
        return f"LocalStack {self.version} {self.edition} at {self.url}, {where}: {layers}, {api}"

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "applies_layers": self.applies_layers, "http_api": self.http_api}


Fetch = Callable[[str], dict[str, Any]]


def fetch_json(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT_S) as response:
        return json.loads(response.read())


def bridge_address() -> str | None:
    """This host's address on Docker's default bridge; None without a local Docker engine."""
    try:
        return container.default_bridge(container.connect()).address
    except (EnvironmentProblem, docker.errors.DockerException):
        return None


def detect_localstack(url: str, fetch: Fetch = fetch_json) -> LocalStackInfo:
    """LocalStack's version, edition and services, from its own endpoints."""
    base = url.rstrip("/")
    try:
        health = fetch(f"{base}/_localstack/health")
        info = fetch(f"{base}/_localstack/info")
    except (OSError, ValueError) as err:
        raise EnvironmentProblem(
            f"LocalStack does not answer at {base} ({err})",
            hint="start it: scripts/localstack.sh start (or docker compose up -d), or pass --endpoint-url",
            step="detect",
        ) from err
    services = health.get("services", {})
    return LocalStackInfo(
        url=base,
        version=str(info.get("version") or health.get("version") or "unknown"),
        edition=str(info.get("edition") or health.get("edition") or "unknown").lower(),
        license_active=bool(info.get("is_license_activated")),
        services=tuple(sorted(name for name, state in services.items() if state != "disabled")),
        in_docker=bool(info.get("is_docker", True)),
    )


@dataclass(frozen=True, kw_only=True)
class LayerSpec:
    logical_id: str
    content_uri: str

    @property
    def name(self) -> str:
        """lambdakit's name for the layer: its source folder (layers/psycopg2/ -> psycopg2)."""
        return Path(self.content_uri).name


@dataclass(frozen=True, kw_only=True)
class FunctionSpec:
    logical_id: str
    code_uri: str
    runtime: str
    arch: str
    layers: tuple[str, ...]  # logical ids of the template's own layers it uses
    http_api: bool  # has HttpApi events
    consumes_queue: bool  # has SQS events


@dataclass(frozen=True, kw_only=True)
class AppTemplate:
    path: Path
    functions: tuple[FunctionSpec, ...]
    layers: tuple[LayerSpec, ...]

    def layer(self, logical_id: str) -> LayerSpec:
        return next(layer for layer in self.layers if layer.logical_id == logical_id)

    @property
    def target(self) -> Target:
        """The one runtime and architecture of the app: the Makefiles build for one."""
        pairs = {(f.runtime, f.arch) for f in self.functions}
        if len(pairs) != 1:
            raise UsageError(
                f"{self.path} mixes runtimes or architectures: {sorted(pairs)}",
                hint="lambdakit deploys one runtime and architecture per template",
            )
        runtime, arch = pairs.pop()
        try:
            return runtimes.target(runtime, arch)
        except ValueError as err:
            raise UsageError(
                f"{self.path}: {err}",
                hint="set the functions' Runtime (Globals or each function) to one of those",
            ) from err


class _CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short tags (!Ref, !GetAtt, !Sub ...) read as their long forms."""


def _cfn_tag(loader: _CfnLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _cfn_tag)


def _resolve(value: Any, parameters: Mapping[str, str]) -> Any:
    """A template value with a {"Ref": parameter} replaced by the parameter's value."""
    if isinstance(value, dict) and set(value) == {"Ref"} and value["Ref"] in parameters:
        return parameters[value["Ref"]]
    return value


def read_template(path: Path, overrides: Mapping[str, str] = {}) -> AppTemplate:
    """The functions and layers of a SAM template, with Globals and parameters applied."""
    try:
        document = yaml.load(path.read_text(), Loader=_CfnLoader)  # a SafeLoader: no arbitrary objects
    except (OSError, yaml.YAMLError) as err:
        raise UsageError(
            f"cannot read the SAM template {path}: {err}", hint="run from the project root"
        ) from err
    parameters = {
        name: str(spec["Default"])
        for name, spec in document.get("Parameters", {}).items()
        if "Default" in spec
    } | dict(overrides)
    defaults = document.get("Globals", {}).get("Function", {})
    resources = document.get("Resources", {})
    layers = tuple(
        LayerSpec(logical_id=name, content_uri=str(res["Properties"]["ContentUri"]))
        for name, res in resources.items()
        if res.get("Type") == "AWS::Serverless::LayerVersion"
    )
    own_layers = {layer.logical_id for layer in layers}
    functions = []
    for name, res in resources.items():
        if res.get("Type") != "AWS::Serverless::Function":
            continue
        props = res.get("Properties", {})
        # SAM puts the Globals' layers first, then the function's own.
        layer_refs = [*defaults.get("Layers", []), *props.get("Layers", [])]
        archs = props.get("Architectures", defaults.get("Architectures", ["x86_64"]))
        functions.append(
            FunctionSpec(
                logical_id=name,
                code_uri=str(props.get("CodeUri", defaults.get("CodeUri", "."))),
                runtime=str(_resolve(props.get("Runtime", defaults.get("Runtime")), parameters)),
                arch=str(_resolve(archs[0], parameters)),
                layers=tuple(
                    ref["Ref"] for ref in layer_refs if isinstance(ref, dict) and ref.get("Ref") in own_layers
                ),
                http_api=any(event.get("Type") == "HttpApi" for event in props.get("Events", {}).values()),
                consumes_queue=any(event.get("Type") == "SQS" for event in props.get("Events", {}).values()),
            )
        )
    if not functions:
        raise UsageError(f"{path} defines no AWS::Serverless::Function", hint="pass the app's template")
    return AppTemplate(path=path, functions=tuple(functions), layers=layers)


@dataclass(frozen=True, kw_only=True)
class SamEnvironment:
    name: str
    stack_name: str
    region: str | None
    parameters: dict[str, str]  # parameter_overrides, in order


def _parse_overrides(raw: str | list[str]) -> dict[str, str]:
    items = shlex.split(raw) if isinstance(raw, str) else raw
    pairs = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"parameter override {item!r} is not KEY=VALUE", hint="fix samconfig.toml")
        pairs[key] = value
    return pairs


def read_samconfig(path: Path, env: str) -> SamEnvironment:
    try:
        config = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise UsageError(
            f"cannot read {path}: {err}", hint="samconfig.toml sits next to template.yaml"
        ) from err
    if env not in config or env == "version":
        known = ", ".join(name for name in config if name != "version")
        raise UsageError(f"{path} has no environment {env!r}", hint=f"choose one of: {known}")
    section = config[env]
    merged = {
        **section.get("global", {}).get("parameters", {}),
        **section.get("deploy", {}).get("parameters", {}),
    }
    if "stack_name" not in merged:
        raise UsageError(f"{path}: environment {env!r} sets no stack_name", hint="add stack_name to it")
    return SamEnvironment(
        name=env,
        stack_name=merged["stack_name"],
        region=merged.get("region"),
        parameters=_parse_overrides(merged.get("parameter_overrides", [])),
    )


def compose_db_service(compose_file: Path) -> str | None:
    """The docker-compose service running PostgreSQL: its name is its host name on the network."""
    if not compose_file.is_file():
        return None
    services = (yaml.safe_load(compose_file.read_text()) or {}).get("services", {})
    return next(
        (name for name, spec in services.items() if str(spec.get("image", "")).startswith("postgres")), None
    )


# --- plan -------------------------------------------------------------------------------------------


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
    target: TargetName
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
    target: TargetName
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
            "target": self.target,
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


def target_region(target: TargetName, environment: SamEnvironment) -> str:
    if target == "localstack":
        return environment.region or LOCALSTACK_REGION
    region = environment.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if not region:
        raise UsageError(
            f"no region for samconfig environment {environment.name!r}",
            hint="set region in samconfig.toml or AWS_REGION",
        )
    return region


def db_parameters(
    environment: SamEnvironment,
    project: Path,
    localstack: LocalStackInfo | None,
    given: Mapping[str, str] = {},
) -> dict[str, str]:
    """samconfig's parameter overrides, then the database host for the target, then the
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
    if options.no_execute_changeset and options.target == "localstack":
        raise UsageError("--no-execute-changeset is for --target aws", hint="drop it for LocalStack")
    if (options.target == "localstack") != (localstack is not None):
        raise ValueError("a LocalStack deploy needs the detected LocalStack, an AWS deploy none")
    project = options.project
    environment = read_samconfig(project / "samconfig.toml", options.config_env)
    region = target_region(options.target, environment)
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
        target=options.target,
        app=app,
        environment=environment,
        region=region,
        parameters=parameters,
        merge_layers=merge,
        build=build,
        deploy=deploy_command,
        notes=tuple(notes),
    )


# --- layers into function packages ------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class MergeRecord:
    function: str
    layer: str
    source: str
    copied: int  # files copied into the function package
    # The function's own modules, packages and libraries that differ from the layer's: they win,
    # as on Lambda, where /var/task comes before /opt on sys.path and LD_LIBRARY_PATH.
    kept: tuple[str, ...]
    skipped: tuple[str, ...]  # layer folders with no function-package counterpart


def layer_source(build_dir: Path, layer: LayerSpec, project: Path) -> Path:
    """What is deployed as the layer: SAM's build of it, else lambdakit's published tree."""
    for candidate in (build_dir / layer.logical_id, project / DEFAULT_OUT / layer.name / TREE_DIR):
        if (candidate / PYTHON_DIR).is_dir():
            return candidate
    raise UsageError(
        f"no built content for layer {layer.logical_id}",
        hint="run sam build first (lambdakit deploy does), or lambdakit build-layer " + layer.name,
        step="merge",
    )


def _mapping(layer_root: Path, target: Target) -> list[tuple[Path, Path, Path | None]]:
    """(layer folder, folder in the function package, subfolder not to copy).

    /opt/python and its site-packages are on sys.path as /var/task is, and
    /var/task/lib is on LD_LIBRARY_PATH as /opt/lib is.
    """
    python = layer_root / PYTHON_DIR
    # python/lib/pythonX.Y/site-packages is a sys.path entry of its own, not a package named lib.
    nested = None if (python / "lib" / "__init__.py").exists() else python / "lib"
    pairs: list[tuple[Path, Path, Path | None]] = [(python, Path(), nested)]
    site = layer_root / target.site_packages
    if site.is_dir():
        pairs.append((site, Path(), None))
    if (layer_root / LIB_DIR).is_dir():
        pairs.append((layer_root / LIB_DIR, Path(LIB_DIR), None))
    return pairs


def _copy_files(source: Path, dest: Path, root: Path) -> tuple[int, list[str]]:
    """Copy the files dest lacks, file by file, as the dynamic loader looks up each library by name
    in each directory; (files copied, dest's own files that differ and were kept, relative to root)."""
    copied, kept = 0, []
    for directory, _, files in os.walk(source):
        for name in files:
            src = Path(directory) / name
            out = dest / src.relative_to(source)
            if out.exists() or out.is_symlink():
                if not _identical(src, out):
                    kept.append(str(out.relative_to(root)))
                continue
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, out, follow_symlinks=False)
            copied += 1
    return copied, kept


def _merge_import_path(source: Path, dest: Path, root: Path, *, skip: Path | None) -> tuple[int, list[str]]:
    """Add a layer's sys.path entry to the package's as Python sees the two together.

    A top-level module or regular package the function has hides the layer's WHOLE copy,
    whatever its file names (Python never looks inside the layer's psycopg2/ once
    /var/task/psycopg2/ is found; the function's foo.py hides the layer's foo/), so it is
    kept as is and nothing of the layer's is mixed into it. Namespace packages combine.
    """
    copied, kept = 0, []
    own = import_entries(dest) if dest.is_dir() else {}
    for key, entries in import_entries(source).items():
        entries = [entry for entry in entries if entry != skip]
        mine = own.get(key, [])
        if mine and not namespace_portion(mine):
            if not all((dest / e.name).exists() and _identical(e, dest / e.name) for e in entries):
                kept += [str(path.relative_to(root)) for path in mine]
            continue
        for entry in entries:
            out = dest / entry.name
            if out.is_dir() and entry.is_dir() and not entry.is_symlink():
                n, k = _merge_import_path(entry, out, root, skip=None)
                copied, kept = copied + n, kept + k
            elif entry.is_dir() and not entry.is_symlink():
                shutil.copytree(entry, out, symlinks=True)
                copied += sum(len(files) for _, _, files in os.walk(out))
            else:
                out.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(entry, out, follow_symlinks=False)
                copied += 1
    return copied, kept


def _identical(a: Path, b: Path) -> bool:
    """Same file content, or directories with the same files of the same content."""
    if a.is_dir() != b.is_dir():
        return False
    if not a.is_dir():
        return filecmp.cmp(a, b, shallow=False)
    names = sorted(p.relative_to(a) for p in a.rglob("*"))
    if names != sorted(p.relative_to(b) for p in b.rglob("*")):
        return False
    return all(_identical(a / name, b / name) for name in names if not (a / name).is_dir())


def merge_layers(app: AppTemplate, build_dir: Path, project: Path) -> list[MergeRecord]:
    """Copy each layer's content into the packages of the functions that use it."""
    records = []
    for function in app.functions:
        package = build_dir / function.logical_id
        if not package.is_dir():
            raise UsageError(f"no function package at {package}", hint="run sam build first", step="merge")
        for layer_id in function.layers:
            root = layer_source(build_dir, app.layer(layer_id), project)
            copied, kept = 0, []
            for source, relative, skip in _mapping(root, app.target):
                if relative == Path(LIB_DIR):
                    n, k = _copy_files(source, package / relative, build_dir)
                else:
                    n, k = _merge_import_path(source, package / relative, build_dir, skip=skip)
                copied += n
                kept += k
            records.append(
                MergeRecord(
                    function=function.logical_id,
                    layer=layer_id,
                    source=str(root),
                    copied=copied,
                    kept=tuple(kept),
                    # /opt/bin is on PATH; nothing in a function package is.
                    skipped=("bin",) if (root / "bin").is_dir() else (),
                )
            )
    return records


# --- validation -------------------------------------------------------------------------------------


def validate_function(
    app: AppTemplate, function: FunctionSpec, build_dir: Path, *, merged: bool
) -> ValidationReport:
    """The function package as the target will run it: with its layers where they are applied,
    alone where their content was merged in (which proves the package carries it)."""
    layers = [] if merged else [build_dir / layer_id for layer_id in function.layers]
    with function_tree(build_dir / function.logical_id, layers) as source:
        return validate_tree(source.tree, app.target, extra=source.problems)


# --- run --------------------------------------------------------------------------------------------


Runner = Callable[[Command, Progress], None]


def run_command(command: Command, progress: Progress) -> None:
    """Run one planned command, its output streamed to progress; a failure names the step."""
    progress.step(command.step, command.shell())
    env = {**os.environ, **command.env}
    try:
        if command.interactive:
            code = subprocess.run(
                command.argv, cwd=command.cwd, env=env, timeout=command.timeout_s
            ).returncode
            tail: list[str] = []
        else:
            code, tail = run_streamed(
                command.argv, progress, cwd=command.cwd, env=env, timeout_s=command.timeout_s
            )
    except OSError as err:
        raise EnvironmentProblem(f"cannot run {command.argv[0]}: {err}", step=command.step) from err
    except subprocess.TimeoutExpired as err:
        raise EnvironmentProblem(
            f"{command.step} did not finish in {command.timeout_s}s", step=command.step
        ) from err
    if code != 0:
        shown = "\n  ".join(tail) if tail else "(see its output above)"
        raise DeployFailed(
            f"{command.step} exited with {code}", hint=f"its last lines:\n  {shown}", step=command.step
        )


@dataclass(frozen=True, kw_only=True)
class DeployResult:
    plan: DeployPlan
    localstack: LocalStackInfo | None
    layers: dict[str, str]  # layer name -> validation verdict
    functions: dict[str, str]  # function logical id -> validation verdict of its package
    merged: tuple[MergeRecord, ...]
    stack_status: str
    outputs: dict[str, str]
    # Each deployed function's state as the target reports it (Active, Failed: reason, ...).
    function_states: dict[str, str]
    timings: dict[str, float]

    @property
    def ok(self) -> bool:
        if "ROLLBACK" in self.stack_status or "FAILED" in self.stack_status:
            return False
        if any(state not in RUNNABLE_STATES for state in self.function_states.values()):
            return False
        # A new stack whose change set was only created waits for review.
        return self.stack_status.endswith("_COMPLETE") or self.stack_status == "REVIEW_IN_PROGRESS"

    def to_dict(self) -> dict[str, object]:
        return {
            "schema": SCHEMA,
            "ok": self.ok,
            "plan": self.plan.to_dict(),
            "localstack": self.localstack.to_dict() if self.localstack else None,
            "layers": self.layers,
            "functions": self.functions,
            "merged": [asdict(record) for record in self.merged],
            "stack": {"name": self.plan.environment.stack_name, "status": self.stack_status},
            "outputs": self.outputs,
            "function_states": self.function_states,
            "timings": self.timings,
        }


class Clients(Protocol):
    def __call__(self, service: str, config: botocore.config.Config | None = None) -> Any: ...


def aws_clients(region: str, localstack: LocalStackInfo | None) -> Clients:
    """A boto3 client factory for the target: LocalStack's endpoint with dummy keys, or AWS."""
    if localstack is None:
        session = boto3.session.Session(region_name=region)
        return lambda service, config=None: session.client(service, config=config)
    session = boto3.session.Session(
        region_name=region,
        aws_access_key_id=LOCALSTACK_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=LOCALSTACK_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )
    return lambda service, config=None: session.client(service, endpoint_url=localstack.url, config=config)


def ensure_db_secret(
    client: Any, plan: DeployPlan, *, environ: Mapping[str, str] = os.environ
) -> Literal["exists", "created"]:
    """The secret DbSecretName names must exist. On LocalStack it is created from
    POSTGRES_PASSWORD (docker-compose.yml's variable); on AWS it is only checked."""
    name = plan.parameters[DB_SECRET_PARAM]
    try:
        client.describe_secret(SecretId=name)
        return "exists"
    except client.exceptions.ResourceNotFoundException:
        pass
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as err:
        raise EnvironmentProblem(
            f"cannot reach Secrets Manager to check secret {name!r}: {err}",
            hint="configure AWS credentials (aws configure, AWS_PROFILE)" if plan.target == "aws" else "",
            step="secret",
        ) from err
    if plan.target == "aws":
        raise EnvironmentProblem(
            f"the database secret {name!r} does not exist in {plan.region}",
            hint=f"aws secretsmanager create-secret --region {plan.region} --name {name} "
            '--secret-string \'{"password": "..."}\'',
            step="secret",
        )
    password = environ.get("POSTGRES_PASSWORD")
    if not password:
        raise EnvironmentProblem(
            f"the database secret {name!r} is not in LocalStack and POSTGRES_PASSWORD is not set",
            hint="export POSTGRES_PASSWORD (the value docker compose gave PostgreSQL) and deploy again",
            step="secret",
        )
    # The RDS secret format the functions read (functions/taskdb/connection.py).
    params = plan.parameters
    secret = {
        "host": params.get(DB_HOST_PARAM, ""),
        "port": int(params.get("DbPort", "5432")),
        "username": params.get("DbUser", ""),
        "password": password,
        "dbname": params.get("DbName", ""),
    }
    client.create_secret(Name=name, SecretString=json.dumps(secret))
    return "created"


def stack_state(client: Any, stack_name: str) -> tuple[str, dict[str, str]]:
    """A stack's status and outputs; ("", {}) when it does not exist."""
    try:
        stack = client.describe_stacks(StackName=stack_name)["Stacks"][0]
    except botocore.exceptions.ClientError as err:
        if "does not exist" in str(err):
            return "", {}
        raise EnvironmentProblem(f"cannot read stack {stack_name}: {err}", step="outputs") from err
    except botocore.exceptions.BotoCoreError as err:
        raise EnvironmentProblem(
            f"cannot read stack {stack_name}: {err}",
            hint="configure AWS credentials (aws configure, AWS_PROFILE)",
            step="outputs",
        ) from err
    return stack["StackStatus"], {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def deploy(
    options: DeployOptions,
    progress: Progress,
    *,
    run: Runner = run_command,
    fetch: Fetch = fetch_json,
    clients: Callable[[str, LocalStackInfo | None], Clients] = aws_clients,
) -> DeployResult:
    timings: dict[str, float] = {}
    started = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal started
        now = time.perf_counter()
        timings[name] = round(now - started, 3)
        started = now

    localstack = None
    if options.target == "localstack":
        progress.step("detect", options.endpoint_url)
        localstack = detect_localstack(options.endpoint_url, fetch)
        if not localstack.in_docker:
            localstack = dataclasses.replace(localstack, bridge_address=bridge_address())
        progress.step("detect", localstack.describe())
    plan = plan_deploy(options, localstack=localstack)
    app, target = plan.app, plan.app.target
    lap("plan")
    # Before the long build: a missing AWS secret or credentials fail fast.
    client = clients(plan.region, localstack)
    progress.step("secret", plan.parameters[DB_SECRET_PARAM])
    ensure_db_secret(client("secretsmanager"), plan)
    lap("secret")

    layers = {}
    for layer in app.layers:
        requirements = options.project / layer.content_uri / "requirements.txt"
        if not requirements.is_file():
            continue
        progress.step("layer", f"{layer.name} for {target.describe()}")
        # Raises InvalidLayer with the problems listed: nothing is deployed then.
        built = build_layer(
            BuildOptions(
                name=layer.name, requirements=requirements, target=target, out=options.project / DEFAULT_OUT
            ),
            progress,
        )
        layers[layer.name] = built.verdict
    lap("layers")

    run(plan.build, progress)
    lap("sam build")
    build_dir = options.project / SAM_BUILD_DIR
    merged: tuple[MergeRecord, ...] = ()
    if plan.merge_layers:
        progress.step("merge", "layer content into function packages (LocalStack does not apply layers)")
        merged = tuple(merge_layers(app, build_dir, options.project))
        lap("merge")

    functions = {}
    for function in app.functions:
        if options.unsafe_skip_validation:
            progress.step("validate", f"SKIPPED for {function.logical_id} (--unsafe-skip-validation)")
            functions[function.logical_id] = "skipped"
            continue
        progress.step("validate", f"function package {function.logical_id}")
        report = validate_function(app, function, build_dir, merged=plan.merge_layers)
        if report.verdict == "invalid":
            raise InvalidLayer(
                f"the {function.logical_id} package for {target.describe()} is invalid; nothing was deployed",
                hint="fix the problems listed; their paths are as Lambda assembles the function: python/ is "
                "the package (/var/task) over its layers' python/ (lambdakit validate --function --layer)",
                step="validate",
                report=report.to_dict(),
            )
        functions[function.logical_id] = report.verdict
    lap("validate")

    run(plan.deploy, progress)
    lap("sam deploy")
    status, outputs = stack_state(client("cloudformation"), plan.environment.stack_name)
    lap("outputs")
    states = {}
    if status.endswith("_COMPLETE") and "ROLLBACK" not in status:
        progress.step("functions", "waiting for every function to be Active")
        states = function_states(client, plan.environment.stack_name, app)
        lap("functions")
    return DeployResult(
        plan=plan,
        localstack=localstack,
        layers=layers,
        functions=functions,
        merged=merged,
        stack_status=status,
        outputs=outputs,
        function_states=states,
        timings=timings,
    )


def physical_id(cloudformation: Any, stack_name: str, logical_id: str) -> str:
    """The deployed name of a template resource (a function's name, a queue's URL)."""
    resource = cloudformation.describe_stack_resource(StackName=stack_name, LogicalResourceId=logical_id)
    return str(resource["StackResourceDetail"]["PhysicalResourceId"])


def function_states(
    client: Clients, stack_name: str, app: AppTemplate, *, timeout_s: float = FUNCTION_ACTIVE_TIMEOUT_S
) -> dict[str, str]:
    """Each function's state once it has left Pending: "Active" (or "Inactive": idle on AWS), else
    what is wrong: "Failed: <the target's reason>", a failed last update, or still Pending.

    A stack can be complete while a function cannot run: LocalStack marks a
    function Failed when its runtime image cannot be had for its architecture.
    """
    cloudformation, lambda_ = client("cloudformation"), client("lambda")
    states = {}
    deadline = time.monotonic() + timeout_s
    for function in app.functions:
        try:
            name = physical_id(cloudformation, stack_name, function.logical_id)
            while True:
                config = lambda_.get_function_configuration(FunctionName=name)
                if config.get("State") != "Pending" or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as err:
            raise EnvironmentProblem(
                f"cannot read the state of {function.logical_id}: {err}", step="functions"
            ) from err
        state = str(config.get("State", "Active"))  # functions created before states existed have none
        if state == "Pending":
            state = f"Pending after {timeout_s:g}s"
        elif state not in RUNNABLE_STATES and config.get("StateReason"):
            state = f"{state}: {config['StateReason']}"
        elif config.get("LastUpdateStatus") == "Failed":
            state = f"update failed: {config.get('LastUpdateStatusReason', 'no reason given')}"
        states[function.logical_id] = state
    return states
