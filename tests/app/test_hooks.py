"""A project's own deploy step (builder/app/hooks.py): found in lambdakit.toml, run for real, its
output read strictly. The task application's hook is tested in tests/functions/test_deploy_hook.py."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from builder.app.hooks import HookContext, before_hook, hook_command, run_before_hook
from builder.errors import DeployFailed, UsageError

CONTEXT = HookContext(destination="aws", region="eu-west-1", stack_name="shop", parameters={"Stage": "dev"})


def hook(project: Path, body: str) -> str:
    (project / "hook.py").write_text("import json, os, sys\n" + body)
    (project / "lambdakit.toml").write_text('[deploy]\nbefore = "hook.py --flag"\n')
    found = before_hook(project)
    assert found is not None
    return found


def test_no_config_no_hook(tmp_path: Path) -> None:
    assert before_hook(tmp_path) is None
    (tmp_path / "lambdakit.toml").write_text("# nothing for deploy\n")
    assert before_hook(tmp_path) is None


def test_the_hook_gets_the_facts_and_its_overrides_are_read(tmp_path: Path) -> None:
    body = (
        "print('seen', sys.argv[1:], file=sys.stderr)\n"
        "env = os.environ\n"
        "print('Echo=' + env['LAMBDAKIT_DESTINATION'] + ',' + env['LAMBDAKIT_REGION'])\n"
        "print('Params=' + env['LAMBDAKIT_PARAMETERS'])\nprint()\nprint('Empty=')\n"
    )
    found = hook(tmp_path, body)
    result = run_before_hook(tmp_path, found, CONTEXT)
    assert result.parameters == {"Echo": "aws,eu-west-1", "Params": json.dumps({"Stage": "dev"}), "Empty": ""}
    assert result.messages == ("seen ['--flag']",)
    # A .py hook runs on lambdakit's own Python, where boto3 is.
    assert result.command == (sys.executable, str(tmp_path / "hook.py"), "--flag")


def test_on_localstack_the_hook_talks_to_localstack_with_its_dummy_keys() -> None:
    local = HookContext(destination="localstack", region="us-east-1", stack_name="s", parameters={},
                        endpoint_url="http://127.0.0.1:4566", credentials={"AWS_ACCESS_KEY_ID": "test"},
                        bridge_address="172.17.0.1")  # fmt: skip
    env = local.environment()
    assert (env["AWS_ENDPOINT_URL"], env["AWS_ACCESS_KEY_ID"]) == ("http://127.0.0.1:4566", "test")
    assert (env["LAMBDAKIT_BRIDGE_ADDRESS"], env["LAMBDAKIT_LOCALSTACK_IN_DOCKER"]) == ("172.17.0.1", "0")
    assert "AWS_ENDPOINT_URL" not in CONTEXT.environment()


def test_a_failing_hook_stops_the_deploy_with_what_it_said(tmp_path: Path) -> None:
    found = hook(tmp_path, "print('the secret is missing', file=sys.stderr)\nsys.exit(2)\n")
    with pytest.raises(DeployFailed) as err:
        run_before_hook(tmp_path, found, CONTEXT)
    assert "failed (exit 2): the secret is missing" in err.value.message
    assert (err.value.step, err.value.exit_code) == ("hook", 1)


def test_stdout_that_is_not_an_override_is_refused(tmp_path: Path) -> None:
    found = hook(tmp_path, "print('creating the secret...')\n")
    with pytest.raises(DeployFailed, match="not a NAME=VALUE parameter override"):
        run_before_hook(tmp_path, found, CONTEXT)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("[deploy\nbefore = 1", "cannot read"),
        ("[deploy]\nbefore = 1\n", "must be a command"),
        ('[deploy]\nbefore = "  "\n', "must be a command"),
        ("deploy = 1\n", "deploy is not a table"),
    ],
)
def test_a_broken_config_is_a_usage_error(tmp_path: Path, config: str, message: str) -> None:
    (tmp_path / "lambdakit.toml").write_text(config)
    with pytest.raises(UsageError, match=message):
        before_hook(tmp_path)


def test_a_missing_hook_is_named(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"scripts/gone.py \(lambdakit.toml\) does not exist"):
        hook_command(tmp_path, "scripts/gone.py")
    with pytest.raises(UsageError, match="cannot run the deploy hook"):
        run_before_hook(tmp_path, "no-such-program-here", CONTEXT)


def test_a_hook_with_an_unclosed_quote_or_not_executable_is_named(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="No closing quotation"):
        hook_command(tmp_path, 'scripts/x.sh "unclosed')
    script = tmp_path / "hook.sh"
    script.write_text("#!/bin/sh\necho A=1\n")
    script.chmod(0o644)
    with pytest.raises(UsageError, match="cannot run the deploy hook"):
        run_before_hook(tmp_path, str(script), CONTEXT)
