"""template.yaml: what SAM and cfn-lint say, the settings the application relies on, the Makefiles."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from harness import ROOT, TEMPLATE, run_sam

from builder.audit.elf import read_elf

# Resolves from the package index (tests/conftest.py).
pytestmark = pytest.mark.network

RESOURCES: dict[str, Any] = TEMPLATE["Resources"]


def _properties(name: str) -> dict[str, Any]:
    return RESOURCES[name]["Properties"]


# How `sam validate --lint` prints a cfn-lint match: "[[W3005: <rule title>] (<message>) matched 13]".
LINT_MATCH = re.compile(r"\[\[([EWI]\d{4}): ")


def _lint(template: Path) -> tuple[int, list[str], str]:
    result = run_sam("validate", "--lint", "--template", str(template), timeout=120)
    return result.returncode, LINT_MATCH.findall(result.stdout + result.stderr), result.stdout


def test_the_lint_check_sees_a_warning_in_the_format_sam_prints(tmp_path: Path) -> None:
    template = tmp_path / "template.yaml"
    template.write_text(
        "Transform: AWS::Serverless-2016-10-31\nResources:\n  Q:\n    Type: AWS::SQS::Queue\n"
        "  R:\n    Type: AWS::SQS::Queue\n    DependsOn: Q\n"
        "    Properties:\n      QueueName: !GetAtt Q.QueueName\n"
    )
    code, matches, _ = _lint(template)
    assert (code, matches) == (1, ["W3005"])  # DependsOn already enforced by the GetAtt


def test_sam_validate_lint_passes_without_warnings() -> None:
    code, matches, stdout = _lint(ROOT / "template.yaml")
    assert (code, matches) == (0, []), stdout
    assert stdout.strip() == f"{ROOT / 'template.yaml'} is a valid SAM Template"


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


def test_arm64_sam_build_runs_lambdakit_for_arm64_and_exports_no_layer_it_could_not_prove(
    tmp_path: Path,
) -> None:
    """A real `ARCH=arm64 sam build` of the layer, on a copy of the project (its build/ is the copy's).

    No machine of this kind can import-check an arm64 python3.12 layer (no interpreter, no
    image): lambdakit builds and audits the arm64 layer, says NOT VERIFIED and exits 3, and
    SAM's build fails instead of handing on a layer nobody proved.
    """
    project = tmp_path / "project"
    shutil.copytree(ROOT / "layers" / "psycopg2", project / "layers" / "psycopg2")
    shutil.copy(ROOT / "template.yaml", project)
    build_dir = tmp_path / "sam-build"

    result = run_sam(
        "build", "Psycopg2Layer", "--build-dir", str(build_dir), cwd=project, env={"ARCH": "arm64"}
    )

    assert result.returncode != 0, result.stdout[-2000:]
    output = result.stdout + result.stderr
    assert "NOT VERIFIED" in output and "python3.12 arm64" in output, output[-3000:]
    assert not (build_dir / "Psycopg2Layer" / "python").exists()
    manifest = json.loads((project / "build" / "layers" / "psycopg2" / "layer.json").read_text())
    assert (manifest["runtime"], manifest["arch"]) == ("python3.12", "arm64")
    assert manifest["validation"]["verdict"] == "not-verified" and manifest["validation"]["problems"] == []
    [extension] = (project / "build" / "layers" / "psycopg2" / "tree" / "python" / "psycopg2").glob(
        "_psycopg*.so"
    )
    assert read_elf(extension).machine == "EM_AARCH64"
