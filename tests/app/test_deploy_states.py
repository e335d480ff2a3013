"""Reading each deployed function's state after `sam deploy` (unit: the target's answers are given).

The real LocalStack test (test_deploy_localstack.py) sees Active and Failed for
real; these are the answers only AWS gives (Inactive, a failed update) or that
take minutes to provoke (a function still Pending).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from builder.app.deploy import function_states
from builder.app.template import read_template


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
