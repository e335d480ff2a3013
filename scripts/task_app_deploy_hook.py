"""The task application's own deploy step: where its database is, and the secret holding its password.

`lambdakit deploy` runs this before anything is built (lambdakit.toml, builder/app/hooks.py),
with the destination's facts in LAMBDAKIT_* variables. It prints the template parameters it
decides, as NAME=VALUE lines:

- DbHost, on LocalStack only: LocalStack's Lambda containers reach PostgreSQL at this host's
  address on Docker's default bridge when LocalStack runs on this host, or by the compose
  service's name when LocalStack runs in docker compose beside it;
- nothing else: the password is never a parameter. The secret that DbSecretName names must
  exist: on AWS it is only checked; on LocalStack it is created from POSTGRES_PASSWORD (the
  value docker compose gave PostgreSQL), in the RDS format functions/taskdb/connection.py reads.

Exit 2, with what to do on stderr, when the secret cannot be had.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn

import boto3
import botocore.exceptions
import yaml

DB_HOST_PARAM = "DbHost"
DB_SECRET_PARAM = "DbSecretName"


def fail(message: str, hint: str) -> NoReturn:
    print(f"{message}; to fix: {hint}", file=sys.stderr)
    sys.exit(2)


def compose_db_service(compose_file: Path) -> str | None:
    """The docker compose service running PostgreSQL: its name is its host name on that network."""
    if not compose_file.is_file():
        return None
    services = (yaml.safe_load(compose_file.read_text()) or {}).get("services", {})
    return next(
        (name for name, spec in services.items() if str(spec.get("image", "")).startswith("postgres")), None
    )


def database_host(environ: Mapping[str, str], project: Path) -> str | None:
    """The DbHost LocalStack's functions can reach; None to keep samconfig's."""
    if environ["LAMBDAKIT_DESTINATION"] != "localstack":
        return None
    if environ.get("LAMBDAKIT_LOCALSTACK_IN_DOCKER") == "1":
        return compose_db_service(project / "docker-compose.yml")
    if environ.get("LAMBDAKIT_BRIDGE_ADDRESS"):
        return environ["LAMBDAKIT_BRIDGE_ADDRESS"]
    print(
        "LocalStack runs on this host but no Docker engine answers here: DbHost stays as samconfig says "
        "(pass --parameter DbHost=... if the functions cannot reach that)",
        file=sys.stderr,
    )
    return None


def ensure_secret(client: Any, parameters: Mapping[str, str], environ: Mapping[str, str]) -> str:
    """Whether the secret "exists" or was "created"; exits with what to do when neither can be."""
    name = parameters.get(DB_SECRET_PARAM)
    if not name:
        fail(
            f"no database secret: {DB_SECRET_PARAM} is not set",
            f"add {DB_SECRET_PARAM}=<secret name> to the samconfig environment's parameter_overrides",
        )
    on_aws = environ["LAMBDAKIT_DESTINATION"] == "aws"
    region = environ["LAMBDAKIT_REGION"]
    try:
        client.describe_secret(SecretId=name)
        return "exists"
    except client.exceptions.ResourceNotFoundException:
        pass
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as err:
        fail(
            f"cannot reach Secrets Manager to check secret {name!r}: {err}",
            "configure AWS credentials (aws configure, AWS_PROFILE)" if on_aws else "is LocalStack running?",
        )
    if on_aws:
        fail(
            f"the database secret {name!r} does not exist in {region}",
            f"aws secretsmanager create-secret --region {region} --name {name} "
            '--secret-string \'{"password": "..."}\'',
        )
    password = environ.get("POSTGRES_PASSWORD")
    if not password:
        fail(
            f"the database secret {name!r} is not in LocalStack and POSTGRES_PASSWORD is not set",
            "export POSTGRES_PASSWORD (the value docker compose gave PostgreSQL) and deploy again",
        )
    secret = {
        "host": parameters.get(DB_HOST_PARAM, ""),
        "port": int(parameters.get("DbPort", "5432")),
        "username": parameters.get("DbUser", ""),
        "password": password,
        "dbname": parameters.get("DbName", ""),
    }
    client.create_secret(Name=name, SecretString=json.dumps(secret))
    return "created"


def main(environ: Mapping[str, str] = os.environ, project: Path = Path()) -> dict[str, str]:
    parameters = json.loads(environ.get("LAMBDAKIT_PARAMETERS", "{}"))
    decided = {}
    if (host := database_host(environ, project)) is not None:
        decided[DB_HOST_PARAM] = host
    # The secret records the host decided here over samconfig's (a `deploy --parameter DbHost`
    # still wins in the template, which the hook cannot tell apart from samconfig's).
    client = boto3.client("secretsmanager", region_name=environ["LAMBDAKIT_REGION"])
    state = ensure_secret(client, parameters | decided, environ)
    print(f"database secret {parameters.get(DB_SECRET_PARAM)}: {state}", file=sys.stderr)
    return decided


if __name__ == "__main__":
    for name, value in main().items():
        print(f"{name}={value}")
