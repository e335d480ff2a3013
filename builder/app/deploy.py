"""deploy: validate what will run, then `sam build` and `sam deploy` to LocalStack or AWS.

The flow is facts -> plan -> run: the template and samconfig.toml are read into
frozen facts (template.py, samconfig.py), the destination is probed
(localstack_info.py: LocalStack's edition decides whether layers are applied),
the commands are planned as argv lists that can be shown before anything runs
(plan.py), then this module runs them with the checks between them:

  [project hook] -> build layers (lambdakit) -> sam build -> [merge layers into function packages]
  -> validate function packages -> sam deploy -> stack outputs -> function states

The project's own hook (lambdakit.toml, hooks.py) comes first: what it needs (a secret,
credentials) fails before the long build, and the parameters it prints reach the plan.
LocalStack Community accepts layers but does not apply them when a function runs,
so their content is merged into the function packages that use them (merge.py)
before those are validated.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import boto3
import botocore.config
import botocore.exceptions

from builder.app.hooks import HookContext, HookResult, before_hook, run_before_hook
from builder.app.localstack_info import (
    LOCALSTACK_CREDENTIALS,
    Fetch,
    LocalStackInfo,
    bridge_address,
    detect_localstack,
    fetch_json,
)
from builder.app.merge import MergeRecord, merge_layers
from builder.app.plan import (
    Command,
    DeployOptions,
    DeployPlan,
    destination_region,
    plan_deploy,
)
from builder.app.sam_build import SAM_BUILD_DIR
from builder.app.samconfig import read_samconfig
from builder.app.template import AppTemplate, FunctionSpec
from builder.build import BuildOptions, build_layer
from builder.errors import DeployFailed, EnvironmentProblem, InvalidLayer
from builder.progress import Progress, run_streamed
from builder.report import ValidationReport
from builder.store import DEFAULT_OUT
from builder.validate import function_tree, validate_tree

SCHEMA = 1
FUNCTION_ACTIVE_TIMEOUT_S = 120.0
# An idle function on AWS becomes Inactive and is started again on its next invocation.
RUNNABLE_STATES = frozenset({"Active", "Inactive"})


def validate_function(
    app: AppTemplate, function: FunctionSpec, build_dir: Path, *, merged: bool
) -> ValidationReport:
    """The function package as the destination will run it: with its layers where they are applied,
    alone where their content was merged in (which proves the package carries it)."""
    layers = [] if merged else [build_dir / layer_id for layer_id in function.layers]
    with function_tree(build_dir / function.logical_id, layers) as source:
        return validate_tree(
            source.tree, function.target, extra=source.problems, handler=function.handler or None
        )


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
    # Each deployed function's state as the destination reports it (Active, Failed: reason, ...).
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
    """A boto3 client factory for the destination: LocalStack's endpoint with dummy keys, or AWS.
    A profile that does not exist or a malformed region is the user's to fix, not a traceback."""
    try:
        if localstack is None:
            session = boto3.session.Session(region_name=region)
        else:
            session = boto3.session.Session(
                region_name=region,
                aws_access_key_id=LOCALSTACK_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                aws_secret_access_key=LOCALSTACK_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            )
    except botocore.exceptions.BotoCoreError as err:
        raise EnvironmentProblem(
            f"cannot set up AWS access for {region}: {err}", hint="check AWS_PROFILE and the region"
        ) from err
    endpoint = localstack.url if localstack else None
    # The service is named at run time; boto3's stubs type only literal names.
    make_client: Callable[..., Any] = session.client

    def client(service: str, config: botocore.config.Config | None = None) -> Any:
        try:
            return make_client(service, endpoint_url=endpoint, config=config)
        except botocore.exceptions.BotoCoreError as err:
            raise EnvironmentProblem(
                f"cannot set up the {service} client for {region}: {err}",
                hint="check the region (samconfig.toml or AWS_REGION) and AWS_PROFILE",
            ) from err

    return client


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
    if options.destination == "localstack":
        progress.step("detect", options.endpoint_url)
        localstack = detect_localstack(options.endpoint_url, fetch)
        if not localstack.in_docker:
            localstack = dataclasses.replace(localstack, bridge_address=bridge_address())
        progress.step("detect", localstack.describe())
    hooked = _run_hook(options, localstack, progress)
    if hooked is not None:
        lap("hook")
    plan = plan_deploy(options, localstack=localstack, hooked=hooked.parameters if hooked else {})
    app = plan.app
    lap("plan")
    client = clients(plan.region, localstack)

    layers = {}
    for layer in app.layers:
        requirements = options.project / layer.content_uri / "requirements.txt"
        target = app.layer_target(layer.logical_id)
        if not requirements.is_file() or target is None:
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
        if not function.is_python_zip:
            # Deployed as SAM built it; lambdakit has no facts to judge it by, and says so.
            progress.step("validate", f"NOT VALIDATED: {function.logical_id} is not a Python zip function")
            functions[function.logical_id] = "not-verified"
            continue
        progress.step("validate", f"function package {function.logical_id}")
        report = validate_function(app, function, build_dir, merged=plan.merge_layers)
        if report.verdict == "invalid":
            raise InvalidLayer(
                f"the {function.logical_id} package for {function.target.describe()} is invalid; "
                "nothing was deployed",
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


def _run_hook(
    options: DeployOptions, localstack: LocalStackInfo | None, progress: Progress
) -> HookResult | None:
    """The project's own deploy step (lambdakit.toml), with the destination's facts."""
    hook = before_hook(options.project)
    if hook is None:
        return None
    environment = read_samconfig(options.project / "samconfig.toml", options.config_env)
    context = HookContext(
        destination=options.destination,
        region=destination_region(options.destination, environment),
        stack_name=environment.stack_name,
        parameters=dict(environment.parameters) | dict(options.parameters),
        endpoint_url=localstack.url if localstack else None,
        credentials=LOCALSTACK_CREDENTIALS if localstack else None,
        localstack_in_docker=bool(localstack and localstack.in_docker),
        bridge_address=localstack.bridge_address if localstack else None,
    )
    progress.step("hook", hook)
    result = run_before_hook(options.project, hook, context)
    for message in result.messages:
        progress.step("hook", message)
    return result


def physical_id(cloudformation: Any, stack_name: str, logical_id: str) -> str:
    """The deployed name of a template resource (a function's name, a queue's URL)."""
    try:
        resource = cloudformation.describe_stack_resource(StackName=stack_name, LogicalResourceId=logical_id)
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as err:
        raise EnvironmentProblem(
            f"cannot find {logical_id} in stack {stack_name}: {err}",
            hint="deploy the template this project has now (lambdakit deploy), and check AWS credentials",
            step="outputs",
        ) from err
    return str(resource["StackResourceDetail"]["PhysicalResourceId"])


def function_states(
    client: Clients, stack_name: str, app: AppTemplate, *, timeout_s: float = FUNCTION_ACTIVE_TIMEOUT_S
) -> dict[str, str]:
    """Each function's state once it has left Pending: "Active" (or "Inactive": idle on AWS), else
    what is wrong: "Failed: <the destination's reason>", a failed last update, or still Pending.

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
