"""The click shells: options to library calls, exit codes, JSON documents."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from builder.cli.deploy import deploy_command, e2e_command
from builder.cli.main import cli

from .conftest import free_port


def test_commands_are_registered_with_lambdakit() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    listed = result.output.split("Commands:")[1].splitlines()
    assert {"deploy", "e2e", "doctor"} <= {line.split()[0] for line in listed if line.strip()}
    for name in ("deploy", "e2e", "doctor"):
        assert CliRunner().invoke(cli, [name, "--help"]).exit_code == 0


def test_aws_needs_a_named_environment(project: Path) -> None:
    result = CliRunner().invoke(deploy_command, ["--target", "aws", "--project-dir", str(project)])
    assert result.exit_code == 2
    assert "needs --env" in result.output


def test_unreachable_localstack_is_an_environment_error_in_json(project: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    for command in (deploy_command, e2e_command):
        result = CliRunner().invoke(command, ["--endpoint-url", url, "--project-dir", str(project), "--json"])
        assert result.exit_code == 2, result.output
        document = json.loads(result.output)
        assert document["ok"] is False
        assert document["error"] == "EnvironmentProblem"
        assert "scripts/localstack.sh start" in document["hint"]
