"""The task application's deploy hook (scripts/task_app_deploy_hook.py), run by lambdakit's own
hook runner (builder/app/hooks.py) as `lambdakit deploy` runs it, against a moto server
standing in for Secrets Manager (LocalStack's and AWS's answers are the same API)."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest

from builder.app.hooks import HookContext, before_hook, run_before_hook
from builder.app.localstack_info import LOCALSTACK_CREDENTIALS
from builder.app.samconfig import read_samconfig
from builder.errors import DeployFailed

REPO = Path(__file__).resolve().parents[2]
REGION = "us-east-1"


def context(moto_endpoint: str, config_env: str, **facts: object) -> HookContext:
    environment = read_samconfig(REPO / "samconfig.toml", config_env)
    destination = "localstack" if config_env == "localstack" else "aws"
    return HookContext(
        destination=destination,
        region=REGION,
        stack_name=environment.stack_name,
        parameters=environment.parameters,
        endpoint_url=moto_endpoint if destination == "localstack" else None,
        credentials=LOCALSTACK_CREDENTIALS if destination == "localstack" else None,
        **facts,  # type: ignore[arg-type]
    )


@pytest.fixture
def secrets(moto_endpoint: str):
    client = boto3.client("secretsmanager", region_name=REGION)
    yield client
    for secret in client.list_secrets()["SecretList"]:
        client.delete_secret(SecretId=secret["ARN"], ForceDeleteWithoutRecovery=True)


def test_this_repository_names_its_hook() -> None:
    assert before_hook(REPO) == "scripts/task_app_deploy_hook.py"


def test_on_a_host_run_localstack_the_database_is_at_the_bridge_and_the_secret_is_created(
    moto_endpoint: str, secrets, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POSTGRES_PASSWORD", "s3cret")
    facts = context(moto_endpoint, "localstack", bridge_address="172.17.0.1")
    result = run_before_hook(REPO, "scripts/task_app_deploy_hook.py", facts)
    assert result.parameters == {"DbHost": "172.17.0.1"}
    assert result.messages == ("database secret lambdakit/local/db: created",)
    stored = json.loads(secrets.get_secret_value(SecretId="lambdakit/local/db")["SecretString"])
    assert stored == {"host": "172.17.0.1", "port": 5432, "username": "tasks", "password": "s3cret",
                      "dbname": "tasks"}  # fmt: skip

    again = run_before_hook(REPO, "scripts/task_app_deploy_hook.py", facts)
    assert again.messages == ("database secret lambdakit/local/db: exists",)


def test_localstack_in_compose_reaches_the_database_by_its_service_name(
    moto_endpoint: str, secrets, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POSTGRES_PASSWORD", "s3cret")
    facts = context(moto_endpoint, "localstack", localstack_in_docker=True)
    result = run_before_hook(REPO, "scripts/task_app_deploy_hook.py", facts)
    # docker-compose.yml's PostgreSQL service.
    assert result.parameters == {"DbHost": "postgres"}


def test_without_the_password_the_deploy_stops_and_says_what_to_set(
    moto_endpoint: str, secrets, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("POSTGRES_PASSWORD", raising=False)
    with pytest.raises(DeployFailed) as err:
        run_before_hook(REPO, "scripts/task_app_deploy_hook.py", context(moto_endpoint, "localstack"))
    assert "POSTGRES_PASSWORD is not set" in err.value.message
    assert "export POSTGRES_PASSWORD" in err.value.message
    assert secrets.list_secrets()["SecretList"] == []


def test_on_aws_the_secret_must_exist_and_is_never_created(
    moto_endpoint: str, secrets, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POSTGRES_PASSWORD", "never used")
    # moto answers for AWS here through AWS_ENDPOINT_URL, set by the moto_endpoint fixture.
    with pytest.raises(DeployFailed) as err:
        run_before_hook(REPO, "scripts/task_app_deploy_hook.py", context(moto_endpoint, "prod"))
    assert "aws secretsmanager create-secret --region us-east-1 --name lambdakit/prod/db" in err.value.message
    assert secrets.list_secrets()["SecretList"] == []

    secrets.create_secret(Name="lambdakit/prod/db", SecretString='{"password": "x"}')
    result = run_before_hook(REPO, "scripts/task_app_deploy_hook.py", context(moto_endpoint, "prod"))
    # On AWS the host is samconfig's: the hook decides nothing.
    assert (result.parameters, result.messages) == ({}, ("database secret lambdakit/prod/db: exists",))
