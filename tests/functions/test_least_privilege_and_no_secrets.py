"""What the committed configuration grants and holds: the worker's role, and no password anywhere.

LocalStack does not enforce IAM, so no deployed test would notice a role that grants too
much: the policies are read from the template itself. The password checks run on the real
samconfig.toml and docker-compose.yml, and on copies with a password planted, so that the
checks are shown to find one.
"""

from __future__ import annotations

import re
import tomllib
from typing import Any

import yaml
from harness import ROOT, TEMPLATE

RESOURCES: dict[str, Any] = TEMPLATE["Resources"]
SECRET_ARN = {
    "Fn::Sub": "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}"
    ":secret:${DbSecretName}-??????"
}
MANAGED = "arn:${AWS::Partition}:iam::aws:policy/service-role/"
PASSWORD_NAME = re.compile(r"pass(word)?|pwd", re.IGNORECASE)
# Compose interpolation that takes the value from the environment, with no default to leak.
FROM_ENVIRONMENT = re.compile(r"\$\{(\w+)(:?\?[^}]*)?\}")


def _worker_statements() -> list[dict[str, Any]]:
    role = RESOURCES["WorkerRole"]["Properties"]
    return [statement for policy in role["Policies"] for statement in policy["PolicyDocument"]["Statement"]]


def test_the_worker_uses_its_own_role_and_sam_adds_no_policy() -> None:
    worker = RESOURCES["WorkerFunction"]["Properties"]
    assert worker["Role"] == {"Fn::GetAtt": ["WorkerRole", "Arn"]}
    # With Role set, SAM attaches nothing for the SQS event (no AWSLambdaSQSQueueExecutionRole).
    assert "Policies" not in worker


def test_the_worker_role_grants_the_task_queue_and_the_db_secret_and_nothing_else() -> None:
    statements = _worker_statements()
    granted = {
        (action, str(statement["Resource"]))
        for statement in statements
        for action in ([statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"])
    }
    queue = str({"Fn::GetAtt": ["TaskQueue", "Arn"]})
    assert granted == {
        ("sqs:ReceiveMessage", queue),
        ("sqs:DeleteMessage", queue),
        ("sqs:ChangeMessageVisibility", queue),
        ("sqs:GetQueueAttributes", queue),
        ("secretsmanager:GetSecretValue", str(SECRET_ARN)),
    }
    assert {statement["Effect"] for statement in statements} == {"Allow"}
    assert all("Condition" not in s and "NotAction" not in s and "NotResource" not in s for s in statements)


def test_the_worker_roles_managed_policies_are_logs_and_vpc_access_only_in_a_vpc() -> None:
    role = RESOURCES["WorkerRole"]["Properties"]
    assert role["ManagedPolicyArns"] == [
        {"Fn::Sub": MANAGED + "AWSLambdaBasicExecutionRole"},
        {
            "Fn::If": [
                "InVpc",
                {"Fn::Sub": MANAGED + "AWSLambdaVPCAccessExecutionRole"},
                {"Ref": "AWS::NoValue"},
            ]
        },
    ]
    assert role["AssumeRolePolicyDocument"]["Statement"] == [
        {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
    ]


def _samconfig_passwords(config: dict[str, Any]) -> list[str]:
    """Every samconfig setting or parameter override whose name says it is a password."""
    found = []
    for environment, commands in config.items():
        if not isinstance(commands, dict):
            continue
        for command, section in commands.items():
            for key, value in section.get("parameters", {}).items():
                if PASSWORD_NAME.search(key):
                    found.append(f"{environment}.{command}.{key}")
                overrides = (
                    value if isinstance(value, list) else [value] if key == "parameter_overrides" else []
                )
                found += [
                    f"{environment}.{command}: {o}"
                    for o in overrides
                    if PASSWORD_NAME.search(o.split("=")[0])
                ]
    return found


def _compose_passwords(compose: dict[str, Any]) -> list[str]:
    """Every password-named variable of a service whose value is not taken from the environment."""
    found = []
    for name, service in compose["services"].items():
        for variable, value in service.get("environment", {}).items():
            if PASSWORD_NAME.search(variable) and not FROM_ENVIRONMENT.fullmatch(str(value)):
                found.append(f"{name}.{variable}")
    return found


def test_samconfig_holds_no_password_and_the_check_finds_one_planted() -> None:
    text = (ROOT / "samconfig.toml").read_text()
    assert _samconfig_passwords(tomllib.loads(text)) == []
    planted = text.replace('"DbUser=tasks",', '"DbUser=tasks",\n  "DbPassword=hunter2",', 1)
    assert _samconfig_passwords(tomllib.loads(planted)) == ["localstack.deploy: DbPassword=hunter2"]
    assert not any(PASSWORD_NAME.search(name) for name in TEMPLATE["Parameters"])


def test_docker_compose_takes_every_password_from_the_environment_and_the_check_finds_one_planted() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert _compose_passwords(compose) == []
    # Both services read POSTGRES_PASSWORD, and compose refuses to start without it (":?").
    assert {
        name: service["environment"]["POSTGRES_PASSWORD"] for name, service in compose["services"].items()
    } == {name: "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}" for name in ("localstack", "postgres")}
    compose["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"] = "${POSTGRES_PASSWORD:-hunter2}"
    assert _compose_passwords(compose) == ["postgres.POSTGRES_PASSWORD"]
