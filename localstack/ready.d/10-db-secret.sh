#!/bin/sh
# Run by LocalStack once it is ready (docker-compose.yml mounts this folder):
# the secret the functions read their database connection from, named as
# DbSecretName in samconfig.toml's localstack environment. The password comes
# from the environment, never from a file in the repository.
set -eu
secret=$(python3 -c 'import json, os; print(json.dumps({"host": "postgres", "port": 5432,
    "username": "tasks", "password": os.environ["POSTGRES_PASSWORD"], "dbname": "tasks"}))')
awslocal secretsmanager create-secret --name lambdakit/local/db --secret-string "$secret" >/dev/null
echo "created secret lambdakit/local/db"
