"""Unit tests of deploy's order of steps, with sam replaced by a fake: nothing invalid reaches
`sam deploy`. Nothing is deployed here; test_deploy_localstack.py runs the real path."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from builder.app.deploy import deploy
from builder.app.plan import Command, DeployOptions
from builder.app.sam_build import SAM_BUILD_DIR
from builder.errors import DeployFailed, InvalidLayer
from builder.progress import Silent

from .conftest import write

PAGES = {
    "/_localstack/health": {"services": {"sqs": "running", "lambda": "running"}},
    "/_localstack/info": {"version": "4.14.0", "edition": "community"},
}


def fetch(url: str) -> dict:
    return PAGES[url.removeprefix("http://ls:4566")]


class FakeSam:
    """`sam build` lays out packages whose handler imports `dep`; `sam deploy` is recorded."""

    def __init__(self, project: Path, *, layer_has_dep: bool) -> None:
        self.project, self.layer_has_dep, self.ran = project, layer_has_dep, []

    def __call__(self, command: Command, progress: object) -> None:
        self.ran.append(command.step)
        if command.step == "sam build":
            build = self.project / SAM_BUILD_DIR
            write(
                build / "DepsLayer/python/dep.py"
                if self.layer_has_dep
                else build / "DepsLayer/python/other.py"
            )
            # Each package holds its Handler's module (api.handler, worker.handler), which needs dep.
            for function, module in (("ApiFunction", "api"), ("WorkerFunction", "worker")):
                write(
                    build / function / f"{module}.py",
                    "import dep\n\ndef handler(event, context):\n    return {}\n",
                )


@pytest.fixture
def clients(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        yield (
            lambda region, localstack: lambda service, config=None: boto3.client(service, region_name=region)
        )


def test_invalid_function_package_is_never_deployed(project: Path, clients) -> None:
    sam = FakeSam(project, layer_has_dep=False)
    options = DeployOptions(
        destination="localstack", config_env="localstack", project=project, endpoint_url="http://ls:4566"
    )
    with pytest.raises(InvalidLayer) as err:
        deploy(options, Silent(), run=sam, fetch=fetch, clients=clients)
    assert sam.ran == ["sam build"]
    assert "ApiFunction" in err.value.message
    assert any(p["code"] == "import-failed" for p in err.value.report["problems"])


def test_merged_then_validated_then_handed_to_sam_deploy(project: Path, clients) -> None:
    sam = FakeSam(project, layer_has_dep=True)
    options = DeployOptions(
        destination="localstack", config_env="localstack", project=project, endpoint_url="http://ls:4566"
    )
    result = deploy(options, Silent(), run=sam, fetch=fetch, clients=clients)
    assert sam.ran == ["sam build", "sam deploy"]
    assert [record.copied for record in result.merged] == [1, 1]
    assert result.functions == {"ApiFunction": "valid", "WorkerFunction": "valid"}
    # The fake deploy created no stack: the result says so instead of claiming success.
    assert result.stack_status == ""
    assert not result.ok
    assert list(result.timings) == [
        "plan",
        "layers",
        "sam build",
        "merge",
        "validate",
        "sam deploy",
        "outputs",
    ]


def test_the_projects_hook_runs_first_and_its_parameters_reach_sam_deploy(project: Path, clients) -> None:
    write(project / "lambdakit.toml", '[deploy]\nbefore = "hook.py"\n')
    write(project / "hook.py", "import os\nprint('DbHost=' + os.environ['LAMBDAKIT_DESTINATION'] + '-db')\n")
    sam = FakeSam(project, layer_has_dep=True)
    options = DeployOptions(
        destination="localstack", config_env="localstack", project=project, endpoint_url="http://ls:4566"
    )
    result = deploy(options, Silent(), run=sam, fetch=fetch, clients=clients)
    assert list(result.timings)[:2] == ["hook", "plan"]
    assert result.plan.parameters["DbHost"] == "localstack-db"
    assert "DbHost=localstack-db" in result.plan.deploy.argv


def test_a_failing_hook_stops_the_deploy_before_the_build(project: Path, clients) -> None:
    write(project / "lambdakit.toml", '[deploy]\nbefore = "hook.py"\n')
    write(project / "hook.py", "import sys\nsys.exit('no secret')\n")
    sam = FakeSam(project, layer_has_dep=True)
    options = DeployOptions(
        destination="localstack", config_env="localstack", project=project, endpoint_url="http://ls:4566"
    )
    with pytest.raises(DeployFailed, match="no secret"):
        deploy(options, Silent(), run=sam, fetch=fetch, clients=clients)
    assert sam.ran == []


def test_a_handler_that_is_not_there_is_never_deployed(project: Path, clients) -> None:
    template = project / "template.yaml"
    template.write_text(template.read_text().replace("Handler: api.handler", "Handler: api.nothing"))
    sam = FakeSam(project, layer_has_dep=True)
    options = DeployOptions(
        destination="localstack", config_env="localstack", project=project, endpoint_url="http://ls:4566"
    )
    with pytest.raises(InvalidLayer) as err:
        deploy(options, Silent(), run=sam, fetch=fetch, clients=clients)
    assert sam.ran == ["sam build"]
    assert ("handler-not-found", "api.nothing") in {
        (p["code"], p["path"]) for p in err.value.report["problems"]
    }


def test_a_function_lambdakit_cannot_judge_is_deployed_as_not_verified(project: Path, clients) -> None:
    template = project / "template.yaml"
    node = (
        "  WebFunction:\n    Type: AWS::Serverless::Function\n    Properties:\n"
        "      CodeUri: web/\n      Handler: index.handler\n      Runtime: nodejs20.x\n      Layers: []\n"
    )
    template.write_text(template.read_text().replace("  Queue:\n", node + "  Queue:\n"))
    sam = FakeSam(project, layer_has_dep=True)
    options = DeployOptions(
        destination="localstack", config_env="localstack", project=project, endpoint_url="http://ls:4566"
    )
    result = deploy(options, Silent(), run=sam, fetch=fetch, clients=clients)
    assert sam.ran == ["sam build", "sam deploy"]
    assert result.functions == {
        "ApiFunction": "valid",
        "WorkerFunction": "valid",
        "WebFunction": "not-verified",
    }
