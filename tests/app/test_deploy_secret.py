"""The database secret: checked on AWS, created on LocalStack from POSTGRES_PASSWORD (moto, in process)."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from builder.app.deploy import ensure_db_secret, stack_state
from builder.app.localstack_info import LocalStackInfo
from builder.app.plan import DeployOptions, DeployPlan, plan_deploy
from builder.errors import EnvironmentProblem

LOCAL = LocalStackInfo(url="http://ls", version="4", edition="community", license_active=False, services=())
TOOLS = {"sam": "sam", "samlocal": "samlocal", "lambdakit": "lambdakit"}.get


def local_plan(project: Path) -> DeployPlan:
    options = DeployOptions(destination="localstack", config_env="localstack", project=project)
    return plan_deploy(options, localstack=LOCAL, tool=TOOLS)


@pytest.fixture(autouse=True)
def fake_aws(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        yield


def test_aws_secret_must_exist_and_is_never_created(project: Path) -> None:
    plan = plan_deploy(
        DeployOptions(destination="aws", config_env="prod", project=project), localstack=None, tool=TOOLS
    )
    client = boto3.client("secretsmanager", region_name=plan.region)
    with pytest.raises(EnvironmentProblem) as err:
        ensure_db_secret(client, plan, environ={"POSTGRES_PASSWORD": "not used"})
    assert "mini/prod/db" in err.value.message
    assert "aws secretsmanager create-secret --region eu-west-1 --name mini/prod/db" in err.value.hint
    assert client.list_secrets()["SecretList"] == []

    client.create_secret(Name="mini/prod/db", SecretString='{"password": "x"}')
    assert ensure_db_secret(client, plan, environ={}) == "exists"


def test_localstack_secret_is_created_from_the_compose_password(project: Path) -> None:
    plan = local_plan(project)
    client = boto3.client("secretsmanager", region_name=plan.region)
    assert ensure_db_secret(client, plan, environ={"POSTGRES_PASSWORD": "s3cret"}) == "created"
    secret = json.loads(client.get_secret_value(SecretId="mini/local/db")["SecretString"])
    assert secret == {"host": "db", "port": 5432, "username": "", "password": "s3cret", "dbname": ""}
    assert ensure_db_secret(client, plan, environ={}) == "exists"


def test_localstack_secret_without_a_password_says_what_to_set(project: Path) -> None:
    plan = local_plan(project)
    client = boto3.client("secretsmanager", region_name=plan.region)
    with pytest.raises(EnvironmentProblem) as err:
        ensure_db_secret(client, plan, environ={})
    assert "POSTGRES_PASSWORD" in err.value.hint


def test_stack_state_of_a_missing_stack() -> None:
    assert stack_state(boto3.client("cloudformation", region_name="us-east-1"), "nope") == ("", {})
