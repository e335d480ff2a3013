"""template.yaml: what SAM and cfn-lint say, the settings the application relies on, the Makefiles."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

from harness import ROOT, TEMPLATE, run_sam

RESOURCES: dict[str, Any] = TEMPLATE["Resources"]


def _properties(name: str) -> dict[str, Any]:
    return RESOURCES[name]["Properties"]


def test_sam_validate_lint_passes_without_warnings() -> None:
    result = run_sam("validate", "--lint", "--template", str(ROOT / "template.yaml"), timeout=120)

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith("is a valid SAM Template")
    assert "W" not in {line[:1] for line in result.stdout.splitlines()}  # cfn-lint prints W1234 ...


def _default(parameter_ref: dict[str, str]) -> int:
    """The default of the template parameter a {"Ref": ...} names."""
    return int(TEMPLATE["Parameters"][parameter_ref["Ref"]]["Default"])


def test_the_queue_outlasts_the_worker_and_redrives_to_the_dead_letter_queue() -> None:
    queue = _properties("TaskQueue")
    worker = _properties("WorkerFunction")

    # Both are parameters (tests on LocalStack shorten them); AWS's advice holds for the defaults.
    assert _default(queue["VisibilityTimeout"]) >= 6 * _default(worker["Timeout"])
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}
    assert _properties("DeadLetterQueue")["MessageRetentionPeriod"] > queue["MessageRetentionPeriod"]
    # The lease is the time after which a claim counts as abandoned; a shorter
    # one would let a second worker take a task that is still being processed.
    # The same parameter sets both, so they cannot drift apart.
    assert worker["Environment"]["Variables"]["TASK_LEASE_SECONDS"] == worker["Timeout"]


def test_the_worker_reports_partial_batch_failures() -> None:
    (event,) = _properties("WorkerFunction")["Events"].values()

    assert event["Type"] == "SQS"
    assert event["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert event["Properties"]["BatchSize"] > 1


def test_every_function_and_the_layer_are_built_by_a_makefile_at_their_source() -> None:
    built = {
        name: r for name, r in RESOURCES.items() if r.get("Metadata", {}).get("BuildMethod") == "makefile"
    }

    assert set(built) == {"Psycopg2Layer", "ApiFunction", "WorkerFunction"}
    for resource in built.values():
        source = resource["Properties"].get("CodeUri") or resource["Properties"]["ContentUri"]
        assert (ROOT / source / "Makefile").is_file()


def _make(tmp_path: Path, makefile: Path, target: str, *variables: str) -> tuple[list[list[str]], set[str]]:
    """Run a target as `sam build` does, with a stand-in lambdakit that records its
    arguments and exports one module; returns the calls and the artifact files."""
    calls = tmp_path / "calls"
    lambdakit = tmp_path / "lambdakit"
    lambdakit.write_text(
        f'#!/bin/sh\necho "$PWD $*" >> {calls}\n'
        'for last; do :; done\nmkdir -p "$last" && touch "$last/dependency.py"\n'
    )
    lambdakit.chmod(0o755)
    artifacts = tmp_path / "artifacts"
    subprocess.run(
        ["make", "--makefile", str(makefile), target, f"LAMBDAKIT={lambdakit}", *variables],
        env={**os.environ, "ARTIFACTS_DIR": str(artifacts)},
        cwd=tmp_path,  # SAM runs make in a scratch copy of the source, not in it
        check=True,
        capture_output=True,
    )
    recorded = [line.split() for line in calls.read_text().splitlines()] if calls.exists() else []
    return recorded, {str(p.relative_to(artifacts)) for p in artifacts.rglob("*") if p.is_file()}


def _sources(*packages: str) -> set[str]:
    functions = ROOT / "functions"
    return {str(p.relative_to(functions)) for package in packages for p in functions.glob(f"{package}/*.py")}


def test_the_api_package_holds_its_code_the_shared_package_and_its_dependencies(tmp_path: Path) -> None:
    calls, files = _make(tmp_path, ROOT / "functions" / "Makefile", "build-ApiFunction")

    artifacts = str(tmp_path / "artifacts")
    assert calls == [
        [str(ROOT), "build-layer", "api-deps", "-r", "functions/api/requirements.txt",
         "--runtime", "python3.12", "--arch", "x86_64", "--export-function", artifacts],
    ]  # fmt: skip
    assert files == _sources("api", "taskdb") | {"dependency.py"}


def test_the_worker_package_has_no_dependency_besides_the_layer(tmp_path: Path) -> None:
    calls, files = _make(tmp_path, ROOT / "functions" / "Makefile", "build-WorkerFunction", "ARCH=arm64")

    assert calls == []
    assert files == _sources("worker", "taskdb")


def test_the_layer_makefile_exports_a_validated_layer_for_the_chosen_arch(tmp_path: Path) -> None:
    calls, _ = _make(tmp_path, ROOT / "layers" / "psycopg2" / "Makefile", "build-Psycopg2Layer", "ARCH=arm64")

    artifacts = str(tmp_path / "artifacts")
    assert calls == [
        [
            str(ROOT),
            "build-layer",
            "psycopg2",
            "--runtime",
            "python3.12",
            "--arch",
            "arm64",
            "--export",
            artifacts,
        ],
    ]
