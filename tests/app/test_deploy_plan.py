"""Planning a deploy: the template and samconfig read, the argv built. No network, no tools run."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

from builder.app.localstack_info import LocalStackInfo, detect_localstack
from builder.app.plan import DeployOptions, plan_deploy
from builder.app.samconfig import read_samconfig
from builder.app.template import read_template
from builder.errors import EnvironmentProblem, UsageError

from .conftest import write

COMMUNITY = LocalStackInfo(
    url="http://127.0.0.1:4566",
    version="4.14.0",
    edition="community",
    license_active=False,
    services=("sqs",),
)
PRO = LocalStackInfo(
    url="http://127.0.0.1:4566",
    version="4.14.0",
    edition="pro",
    license_active=True,
    services=("apigatewayv2", "sqs"),
)
ALL_TOOLS = {"sam": "/bin/sam", "samlocal": "/bin/samlocal", "lambdakit": "/bin/lambdakit"}


def tools(*missing: str):
    return lambda name: None if name in missing else ALL_TOOLS[name]


def test_template_applies_globals_and_parameters(project: Path) -> None:
    app = read_template(project / "template.yaml", {"Architecture": "arm64"})
    api, worker = app.functions
    assert (api.logical_id, api.runtime, api.arch, api.http_api) == (
        "ApiFunction",
        "python3.12",
        "arm64",
        True,
    )
    # A layer ARN from elsewhere is not the template's to build or merge.
    assert worker.layers == ("DepsLayer",)
    assert not worker.http_api
    assert app.layers[0].name == "deps"
    assert app.single_target is not None
    assert (app.single_target.runtime, app.single_target.arch.name) == ("python3.12", "arm64")
    assert app.layer_target("DepsLayer") == app.single_target


def test_functions_on_two_runtimes_are_each_their_own_but_cannot_share_a_layer(project: Path) -> None:
    text = (project / "template.yaml").read_text()
    two = text.replace("Handler: worker.handler", "Handler: worker.handler\n      Runtime: python3.11")
    write(project / "template.yaml", two)
    app = read_template(project / "template.yaml")
    api, worker = app.functions
    assert (api.target.runtime, worker.target.runtime) == ("python3.12", "python3.11")
    # Both use DepsLayer through Globals: SAM builds one artifact per layer.
    with pytest.raises(UsageError, match="DepsLayer is used by functions on different targets"):
        app.layer_target("DepsLayer")
    with pytest.raises(UsageError, match="different targets"):
        _ = app.single_target

    write(project / "template.yaml", two.replace("    Layers: [!Ref DepsLayer]\n", ""))
    app = read_template(project / "template.yaml")
    assert app.single_target is None
    assert app.layer_target("DepsLayer") is None
    plan = plan_deploy(
        DeployOptions(destination="aws", config_env="prod", project=project), localstack=None, tool=tools()
    )
    # Each Makefile's own defaults apply: no one runtime to tell them.
    assert "RUNTIME" not in plan.build.env


def test_a_runtime_lambda_does_not_run_is_a_usage_error_not_a_traceback(project: Path) -> None:
    template = project / "template.yaml"
    write(template, template.read_text().replace("Runtime: python3.12", "Runtime: python3.8"))
    with pytest.raises(
        UsageError, match=r"function ApiFunction: unknown runtime 'python3.8'; choose one of python3.9"
    ):
        _ = read_template(template).single_target
    for command in (["deploy", "--target", "aws", "--env", "prod", "--no-execute-changeset"], ["doctor"]):
        proc = subprocess.run(
            [sys.executable, "-m", "builder", *command, "--project-dir", str(project)],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "AWS_ENDPOINT_URL": "http://127.0.0.1:9"},
        )
        assert "Traceback" not in proc.stderr, proc.stderr
        if command[0] == "deploy":
            assert proc.returncode == 2 and "unknown runtime 'python3.8'" in proc.stderr, proc.stderr


def test_samconfig_overrides_as_list_or_string(project: Path) -> None:
    local = read_samconfig(project / "samconfig.toml", "localstack")
    prod = read_samconfig(project / "samconfig.toml", "prod")
    assert local.parameters["DbSecretName"] == "mini/local/db"
    assert prod.parameters == {
        "Architecture": "x86_64",
        "DbHost": "db.example.internal",
        "DbSecretName": "mini/prod/db",
    }
    assert (prod.stack_name, prod.region) == ("mini-prod", "eu-west-1")
    with pytest.raises(UsageError, match="no environment 'staging'") as err:
        read_samconfig(project / "samconfig.toml", "staging")
    assert "localstack, prod" in err.value.hint


def test_localstack_community_plan(project: Path) -> None:
    plan = plan_deploy(
        DeployOptions(destination="localstack", config_env="localstack", project=project),
        localstack=COMMUNITY,
        tool=tools(),
    )
    assert plan.merge_layers
    assert plan.build.argv == (
        "/bin/sam",
        "build",
        "--template-file",
        "template.yaml",
        "--config-env",
        "localstack",
    )
    # The Makefiles get the template's runtime and architecture: SAM does not pass them.
    assert plan.build.env["RUNTIME"] == "python3.12"
    assert plan.build.env["ARCH"] == "x86_64"
    assert plan.build.env["LAMBDAKIT"] == "/bin/lambdakit"
    argv = plan.deploy.argv
    assert argv[:4] == ("/bin/samlocal", "deploy", "--config-env", "localstack")
    assert "--no-confirm-changeset" in argv
    overrides = argv[argv.index("--parameter-overrides") + 1 :]
    # samconfig's, as they are: what an application decides beyond them is its hook's (test_hooks.py).
    assert overrides == ("Architecture=x86_64", "DbHost=localhost", "DbSecretName=mini/local/db")
    assert plan.deploy.env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:4566"
    assert plan.deploy.env["AWS_ACCESS_KEY_ID"] == "test"
    assert not plan.deploy.interactive
    assert any("does not apply layers" in note for note in plan.notes)
    assert any("invoking its function" in note for note in plan.notes)


def test_command_line_parameters_win_over_the_hooks_which_win_over_samconfigs(project: Path) -> None:
    options = DeployOptions(destination="localstack", config_env="localstack", project=project)
    hooked = {"DbHost": "172.17.0.1", "Stage": "hooked"}
    plan = plan_deploy(options, localstack=COMMUNITY, hooked=hooked, tool=tools())
    assert (plan.parameters["DbHost"], plan.parameters["Stage"]) == ("172.17.0.1", "hooked")

    given = dataclasses.replace(options, parameters=(("DbHost", "db.internal"), ("DbPort", "6543")))
    plan = plan_deploy(given, localstack=COMMUNITY, hooked=hooked, tool=tools())
    assert (plan.parameters["DbHost"], plan.parameters["DbPort"]) == ("db.internal", "6543")

    with pytest.raises(UsageError, match="password"):
        plan_deploy(options, localstack=COMMUNITY, hooked={"DbPassword": "x"}, tool=tools())


def test_localstack_without_samlocal_uses_sam_and_says_so(project: Path) -> None:
    plan = plan_deploy(
        DeployOptions(destination="localstack", config_env="localstack", project=project),
        localstack=PRO,
        tool=tools("samlocal"),
    )
    assert plan.deploy.argv[:2] == ("/bin/sam", "deploy")
    assert plan.deploy.env["AWS_ENDPOINT_URL"] == PRO.url
    assert any("samlocal is not installed" in note for note in plan.notes)
    # Pro applies layers and serves HTTP APIs: nothing to work around.
    assert not plan.merge_layers
    assert not any("layers" in note or "HTTP API" in note for note in plan.notes)


def test_aws_plan_with_no_execute_changeset(project: Path) -> None:
    options = DeployOptions(destination="aws", config_env="prod", project=project, no_execute_changeset=True)
    plan = plan_deploy(options, localstack=None, tool=tools())
    argv = plan.deploy.argv
    assert argv[:6] == ("/bin/sam", "deploy", "--config-env", "prod", "--region", "eu-west-1")
    assert "--no-execute-changeset" in argv
    assert "--no-confirm-changeset" not in argv
    assert "AWS_ENDPOINT_URL" not in plan.deploy.env
    assert "AWS_ACCESS_KEY_ID" not in plan.deploy.env
    # The secret's name travels, never a password; the host stays what samconfig says.
    overrides = argv[argv.index("--parameter-overrides") + 1 :]
    assert "DbSecretName=mini/prod/db" in overrides
    assert "DbHost=db.example.internal" in overrides
    assert not any("password" in item.lower() for item in argv)
    assert not plan.deploy.interactive
    assert not plan.merge_layers


def test_aws_plan_that_executes_lets_sam_ask(project: Path) -> None:
    plan = plan_deploy(
        DeployOptions(destination="aws", config_env="prod", project=project), localstack=None, tool=tools()
    )
    assert "--no-execute-changeset" not in plan.deploy.argv
    # samconfig's confirm_changeset prompt reaches the user's terminal.
    assert plan.deploy.interactive


def test_plaintext_password_is_refused(project: Path) -> None:
    config = (project / "samconfig.toml").read_text()
    write(project / "samconfig.toml", config.replace('"DbSecretName=mini/local/db"', '"DbPassword=hunter2"'))
    with pytest.raises(UsageError) as err:
        plan_deploy(
            DeployOptions(destination="localstack", config_env="localstack", project=project),
            localstack=COMMUNITY,
            tool=tools(),
        )
    assert err.value.message == "parameter overrides carry a password (DbPassword)"
    assert "Secrets Manager secret" in err.value.hint


def test_password_parameter_with_a_secret_is_refused(project: Path) -> None:
    config = (project / "samconfig.toml").read_text()
    write(project / "samconfig.toml", config.replace('"DbHost=localhost"', '"DbPassword=hunter2"'))
    with pytest.raises(UsageError, match="carry a password"):
        plan_deploy(
            DeployOptions(destination="localstack", config_env="localstack", project=project),
            localstack=COMMUNITY,
            tool=tools(),
        )


def test_no_execute_changeset_is_for_aws(project: Path) -> None:
    options = DeployOptions(
        destination="localstack", config_env="localstack", project=project, no_execute_changeset=True
    )
    with pytest.raises(UsageError, match="--target aws"):
        plan_deploy(options, localstack=COMMUNITY, tool=tools())


def test_missing_sam_is_an_environment_problem(project: Path) -> None:
    with pytest.raises(EnvironmentProblem, match="sam is not installed"):
        plan_deploy(
            DeployOptions(destination="aws", config_env="prod", project=project),
            localstack=None,
            tool=tools("sam"),
        )


@pytest.mark.parametrize(
    ("info", "applies", "http_api"),
    [
        ({"version": "4.14.0", "edition": "community"}, False, False),
        # Run from source (as scripts/localstack.sh does) it does not know its edition.
        ({"version": "2026.3.0", "edition": "unknown"}, False, False),
        ({"version": "4.14.0", "edition": "pro", "is_license_activated": True}, True, True),
    ],
)
def test_detect_localstack_edition(info: dict, applies: bool, http_api: bool) -> None:
    services = {"sqs": "running", "lambda": "available", "s3": "disabled"}
    if http_api:
        services["apigatewayv2"] = "available"
    pages = {"/_localstack/health": {"services": services}, "/_localstack/info": info}
    found = detect_localstack("http://ls:4566/", lambda url: pages[url.removeprefix("http://ls:4566")])
    assert found.applies_layers is applies
    assert found.http_api is http_api
    assert found.url == "http://ls:4566"
    assert "s3" not in found.services


def test_unreachable_localstack_says_how_to_start_it() -> None:
    def refuse(url: str) -> dict:
        raise ConnectionRefusedError(111, "Connection refused")

    with pytest.raises(EnvironmentProblem) as err:
        detect_localstack("http://127.0.0.1:9", refuse)
    assert "scripts/localstack.sh start" in err.value.hint


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            '[e.deploy.parameters]\nstack_name = "s"\nparameter_overrides = "A=\'open"\n',
            "No closing quotation",
        ),
        ('[e.deploy.parameters]\nstack_name = "s"\nparameter_overrides = 5\n', "neither a string nor a list"),
        ('[e.deploy.parameters]\nstack_name = "s"\nparameter_overrides = ["A"]\n', "'A' is not KEY=VALUE"),
        ("e = 1\n", "'e' is not an environment table"),
        ("[e.deploy]\nparameters = 3\n", "sets no stack_name"),
        ('[e.deploy.parameters]\nstack_name = "s"\nregion = 5\n', "region is not a string"),
        ("[e.deploy.parameters\n", "cannot read"),
    ],
)
def test_a_malformed_samconfig_is_a_usage_error(tmp_path: Path, config: str, message: str) -> None:
    (tmp_path / "samconfig.toml").write_text(config)
    with pytest.raises(UsageError, match=message):
        read_samconfig(tmp_path / "samconfig.toml", "e")


@pytest.mark.parametrize(
    ("resources", "message"),
    [
        ("  F: null\n", None),
        ("  L:\n    Type: AWS::Serverless::LayerVersion\n    Properties: {}\n", "layer L has no ContentUri"),
        (
            "  F:\n    Type: AWS::Serverless::Function\n    Properties:\n      Architectures: []\n",
            "F.Architectures must name one architecture",
        ),
        (
            "  F:\n    Type: AWS::Serverless::Function\n    Properties:\n      Layers: !Ref L\n",
            "F.Layers is not a list",
        ),
        ("  F:\n    Type: AWS::Serverless::Function\n    Properties: [1]\n", "F.Properties is not a mapping"),
        (
            "  F:\n    Type: AWS::Serverless::Function\n    Properties:\n      Events: [1]\n",
            "F.Events is not a mapping",
        ),
    ],
)
def test_a_malformed_template_is_a_usage_error(tmp_path: Path, resources: str, message: str | None) -> None:
    (tmp_path / "template.yaml").write_text("Resources:\n" + resources)
    with pytest.raises(UsageError, match=message or "defines no AWS::Serverless::Function"):
        read_template(tmp_path / "template.yaml")


def test_a_function_without_a_runtime_says_so(tmp_path: Path) -> None:
    (tmp_path / "template.yaml").write_text("Resources:\n  F:\n    Type: AWS::Serverless::Function\n")
    with pytest.raises(UsageError, match="function F has no Runtime"):
        _ = read_template(tmp_path / "template.yaml").single_target


def test_a_parameter_naming_where_a_password_is_kept_is_accepted(project: Path) -> None:
    options = DeployOptions(destination="localstack", config_env="localstack", project=project)
    kept = {"DbPasswordSecretArn": "arn:aws:secretsmanager:us-east-1:1:secret:x", "AdminPasswordParam": "/p"}
    plan = plan_deploy(options, localstack=COMMUNITY, hooked=kept, tool=tools())
    assert plan.parameters["DbPasswordSecretArn"].startswith("arn:")
    with pytest.raises(UsageError, match=r"carry a password \(AdminPassword\)"):
        plan_deploy(options, localstack=COMMUNITY, hooked={"AdminPassword": "x"}, tool=tools())


def test_a_samconfig_that_is_not_text_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "samconfig.toml").write_bytes(b"version = 0.1\n\xff\xfe[bad]\n")
    with pytest.raises(UsageError, match="cannot read"):
        read_samconfig(tmp_path / "samconfig.toml", "e")
