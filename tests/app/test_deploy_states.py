"""Reading each deployed function's state after `sam deploy` (unit: the target's answers are given).

The real LocalStack test (test_deploy_localstack.py) sees Active and Failed for
real; these are the answers only AWS gives (Inactive, a failed update) or that
take minutes to provoke (a function still Pending).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from builder.app.deploy import aws_clients, function_states, physical_id, stack_state
from builder.app.template import read_template
from builder.errors import EnvironmentProblem


class Answers:
    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config

    def describe_stack_resource(self, StackName: str, LogicalResourceId: str) -> dict[str, Any]:
        return {"StackResourceDetail": {"PhysicalResourceId": f"fn-{LogicalResourceId}"}}

    def get_function_configuration(self, FunctionName: str) -> dict[str, Any]:
        return self.config


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"State": "Active", "LastUpdateStatus": "Successful"}, "Active"),
        ({"State": "Inactive"}, "Inactive"),  # idle on AWS: started again on its next invocation
        (
            {"State": "Failed", "StateReason": "no matching manifest for linux/arm64"},
            "Failed: no matching manifest for linux/arm64",
        ),
        (
            {"State": "Active", "LastUpdateStatus": "Failed", "LastUpdateStatusReason": "image pull"},
            "update failed: image pull",
        ),
        ({"State": "Pending"}, "Pending after 0s"),
    ],
)
def test_function_states(project: Path, config: dict[str, Any], expected: str) -> None:
    answers = Answers(config)
    app = read_template(project / "template.yaml")
    states = function_states(lambda service, config=None: answers, "stack", app, timeout_s=0)
    assert states == {"ApiFunction": expected, "WorkerFunction": expected}


def test_stack_state_of_a_missing_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        assert stack_state(boto3.client("cloudformation", region_name="us-east-1"), "nope") == ("", {})


def test_a_missing_profile_or_a_malformed_region_is_an_environment_problem(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_PROFILE", "no-such-profile")
    with pytest.raises(EnvironmentProblem, match="could not be found"):
        aws_clients("us-east-1", None)
    monkeypatch.delenv("AWS_PROFILE")
    with pytest.raises(EnvironmentProblem, match="cannot set up the lambda client") as err:
        aws_clients("us east 1!", None)("lambda")
    assert "region" in err.value.hint


def test_a_resource_the_stack_lacks_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws(), pytest.raises(EnvironmentProblem, match="cannot find ApiFunction in stack nope"):
        physical_id(boto3.client("cloudformation", region_name="us-east-1"), "nope", "ApiFunction")
