"""Running planned commands: output streamed, failures named by step, time bounded."""

from __future__ import annotations

from pathlib import Path

import pytest

from builder.app.deploy import run_command
from builder.app.plan import Command
from builder.errors import DeployFailed, EnvironmentProblem


class Recorder:
    def __init__(self) -> None:
        self.steps: list[str] = []
        self.lines: list[str] = []

    def step(self, name: str, detail: str = "") -> None:
        self.steps.append(f"{name}: {detail}")

    def output(self, line: str) -> None:
        self.lines.append(line)


def test_output_is_streamed_and_env_added(tmp_path: Path) -> None:
    progress = Recorder()
    command = Command(
        step="greet", argv=("sh", "-c", 'echo "$GREETING"; pwd'), cwd=tmp_path, env={"GREETING": "hi"}
    )
    run_command(command, progress)
    assert progress.lines == ["hi", str(tmp_path)]
    assert progress.steps == ["greet: GREETING=hi sh -c 'echo \"$GREETING\"; pwd'"]


def test_failure_names_the_step_and_shows_the_last_lines(tmp_path: Path) -> None:
    command = Command(step="sam deploy", argv=("sh", "-c", "echo one; echo two >&2; exit 3"), cwd=tmp_path)
    with pytest.raises(DeployFailed) as err:
        run_command(command, Recorder())
    assert err.value.step == "sam deploy"
    assert err.value.exit_code == 1
    assert "exited with 3" in err.value.message
    assert "one" in err.value.hint and "two" in err.value.hint


def test_a_silent_hang_is_stopped(tmp_path: Path) -> None:
    command = Command(step="sam build", argv=("sleep", "30"), cwd=tmp_path, timeout_s=1)
    with pytest.raises(EnvironmentProblem, match="did not finish in 1s"):
        run_command(command, Recorder())


def test_secrets_are_not_shown() -> None:
    command = Command(step="x", argv=("true",), cwd=Path(), env={"AWS_SECRET_ACCESS_KEY": "test"})
    assert "test" not in command.shell()
