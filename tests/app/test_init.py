"""`lambdakit init` in someone else's SAM project: the layer folder, the Makefiles and the template
lines, with every line the user wrote kept as it was; refusals that write nothing; a real `sam build`.

Every test runs the installed `lambdakit` in the project's folder, as a user would.
"""

from __future__ import annotations

import difflib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from builder.app.template import read_template
from builder.recipes import find_builtin

BIN = Path(sys.executable).parent

# A project lambdakit never saw: its own parameter names, comments everywhere, short tags, Globals,
# quoting of its own, a function with a Layers list of its own.
TEMPLATE = """\
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Description: >
  Someone else's report service. Its own names, its own comments.

Parameters:
  CpuKind:   # their name for the architecture
    Type: String
    Default: x86_64
    AllowedValues: [x86_64, arm64]
  StageName:
    Type: String
    Default: 'test'

Conditions:
  IsProd: !Equals [!Ref StageName, "prod"]

Globals:
  Function:
    Runtime: python3.12
    Architectures: [!Ref CpuKind]
    Timeout: 15
    Environment:
      Variables:
        STAGE: !Ref StageName

Resources:
  # Where the reports go.
  ReportBucket:
    Type: AWS::S3::Bucket
    Properties:
      BucketName: !Sub "reports-${StageName}-${AWS::AccountId}"

  # Answers HTTP requests; reads PostgreSQL.
  ReportApi:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: src/api/
      Handler: app.handler   # module.function
      Policies:
        - S3ReadPolicy:
            BucketName: !Ref ReportBucket
        - !If
          - IsProd
          - AWSXRayDaemonWriteAccess
          - !Ref AWS::NoValue
      Environment:
        Variables:
          BUCKET_ARN: !GetAtt ReportBucket.Arn

  ReportWorker:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: src/worker
      Handler: worker.run
      Layers:
        - arn:aws:lambda:us-east-1:123456789012:layer:tracing:3
      # small on purpose
      MemorySize: 128

Outputs:
  Bucket:
    Value: !Ref ReportBucket
# end of template
"""

LAYER_LINES = [
    "  Psycopg2Layer:",
    "    Type: AWS::Serverless::LayerVersion",
    "    Properties:",
    "      ContentUri: layers/psycopg2",
    "      CompatibleRuntimes: [python3.12]",
    "      CompatibleArchitectures: [!Ref CpuKind]",
    "    Metadata:",
    "      BuildMethod: makefile",
    "",
]
WIRING_LINES = ["      Layers: [!Ref Psycopg2Layer]", "        - !Ref Psycopg2Layer"]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "reports"
    (folder / "src" / "api").mkdir(parents=True)
    (folder / "src" / "worker").mkdir(parents=True)
    (folder / "template.yaml").write_text(TEMPLATE)
    (folder / "src" / "api" / "app.py").write_text(
        "import psycopg2\nimport six\n\n\ndef handler(event, context):\n"
        "    return {'psycopg2': psycopg2.__version__, 'six': six.__version__}\n"
    )
    (folder / "src" / "worker" / "worker.py").write_text("def run(event, context):\n    return 1\n")
    return folder


def init(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(BIN / "lambdakit"), "init", *args],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"},
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under the folder: its bytes and modification time."""
    return {
        str(path.relative_to(folder)): (path.read_bytes(), path.stat().st_mtime_ns)
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def added_lines(before: str, after: str) -> list[str]:
    """The lines `after` adds to `before`; fails when any line of `before` changed or went."""
    old, new = before.splitlines(), after.splitlines()
    changes = [
        op for op in difflib.SequenceMatcher(a=old, b=new, autojunk=False).get_opcodes() if op[0] != "equal"
    ]
    assert [op[0] for op in changes] == ["insert"] * len(changes), changes
    return [line for _, _, _, start, end in changes for line in new[start:end]]


def test_edit_template_adds_only_its_lines_and_wires_the_layer(project: Path) -> None:
    result = init(project, "--edit-template", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["template_edited"] and not report["already_set_up"]
    assert report["functions"] == ["ReportApi", "ReportWorker"]

    edited = (project / "template.yaml").read_text()
    # Every comment, tag, quote and blank line of the user's is where it was; only these are new.
    assert added_lines(TEMPLATE, edited) == [*LAYER_LINES, *WIRING_LINES]
    # The layer goes before the first function that uses it, above that function's comment.
    assert edited.index("  Psycopg2Layer:") < edited.index("  # Answers HTTP requests")

    app = read_template(project / "template.yaml")
    assert app.layer("Psycopg2Layer").content_uri == "layers/psycopg2"
    assert {f.logical_id: f.layers for f in app.functions} == {
        "ReportApi": ("Psycopg2Layer",),
        "ReportWorker": ("Psycopg2Layer",),
    }

    layer = project / "layers" / "psycopg2"
    recipe = find_builtin("psycopg2")
    assert recipe is not None
    assert (layer / "requirements.txt").read_text() == recipe.text
    makefile = (layer / "Makefile").read_text()
    assert "build-Psycopg2Layer:" in makefile
    assert "RUNTIME ?= python3.12\nARCH ?= x86_64\n" in makefile
    assert "build-layer psycopg2 --runtime $(RUNTIME) --arch $(ARCH)" in makefile
    assert '--export "$(ARTIFACTS_DIR)"' in makefile


def test_a_second_run_finds_everything_in_place_and_writes_nothing(project: Path) -> None:
    assert init(project, "--edit-template").returncode == 0
    before = snapshot(project)
    again = init(project, "--edit-template")
    assert again.returncode == 0, again.stderr
    assert "already set up" in again.stdout
    assert snapshot(project) == before
    document = json.loads(init(project, "--json").stdout)
    assert document["already_set_up"] and document["template_additions"] == []
    assert {f["status"] for f in document["files"]} == {"unchanged"}
    assert snapshot(project) == before


def test_without_edit_template_it_prints_the_lines_and_leaves_the_template_alone(project: Path) -> None:
    result = init(project)
    assert result.returncode == 0, result.stderr
    assert (project / "template.yaml").read_bytes() == TEMPLATE.encode()
    assert "add to template.yaml (or run init again with --edit-template)" in result.stdout
    printed = [line.strip() for line in result.stdout.splitlines()]
    for line in filter(None, [*LAYER_LINES, *WIRING_LINES]):
        assert line.strip() in printed
    assert (project / "layers" / "psycopg2" / "Makefile").is_file()

    # The JSON says where each addition goes: a line of the unchanged template.
    additions = json.loads(init(project, "--json").stdout)["template_additions"]
    lines = TEMPLATE.splitlines()
    where = {a["where"]: lines[a["line"] - 1].strip() for a in additions}
    assert where == {
        "Resources": "# Answers HTTP requests; reads PostgreSQL.",
        "Resources.ReportApi.Properties": "",
        "Resources.ReportWorker.Properties.Layers": "# small on purpose",
    }
    assert (project / "template.yaml").read_bytes() == TEMPLATE.encode()


def test_a_template_elsewhere_gets_the_layer_next_to_it(project: Path) -> None:
    result = init(project.parent, "--template", "reports/template.yaml", "--edit-template")
    assert result.returncode == 0, result.stderr
    assert (project / "layers" / "psycopg2" / "Makefile").is_file()
    assert not (project.parent / "layers").exists()
    assert read_template(project / "template.yaml").layer("Psycopg2Layer").content_uri == "layers/psycopg2"


def test_an_existing_different_file_is_refused_and_nothing_is_written(project: Path) -> None:
    makefile = project / "layers" / "psycopg2" / "Makefile"
    makefile.parent.mkdir(parents=True)
    makefile.write_text("build-Psycopg2Layer:\n\techo the user's own\n")
    before = snapshot(project)
    for args in ([], ["--edit-template"], ["--edit-template", "--json"]):
        result = init(project, *args)
        assert result.returncode == 2
        assert snapshot(project) == before  # not even requirements.txt next to it
    assert "layers/psycopg2/Makefile already exists with other content" in init(project).stderr
    error = json.loads(result.stdout)
    assert error["ok"] is False and error["error"] == "UsageError"
    assert "Makefile" in error["message"] and error["hint"]


def test_requirements_given_differently_are_refused_but_the_projects_own_are_kept(project: Path) -> None:
    requirements = project / "layers" / "deps" / "requirements.txt"
    requirements.parent.mkdir(parents=True)
    requirements.write_text("six==1.16.0\n")
    before = snapshot(project)
    refused = init(project, "--layer", "deps", "-p", "six==1.17.0")
    assert refused.returncode == 2 and "requirements.txt already exists" in refused.stderr
    assert snapshot(project) == before
    kept = init(project, "--layer", "deps", "--edit-template")
    assert kept.returncode == 0, kept.stderr
    assert requirements.read_text() == "six==1.16.0\n"
    assert "build-DepsLayer:" in (project / "layers" / "deps" / "Makefile").read_text()
    assert read_template(project / "template.yaml").layer("DepsLayer").content_uri == "layers/deps"


def test_function_makefiles_are_wired_only_where_no_build_method_is(project: Path) -> None:
    template = TEMPLATE.replace(
        "      MemorySize: 128\n", "      MemorySize: 128\n    Metadata:\n      BuildMethod: python3.12\n"
    )
    (project / "template.yaml").write_text(template)
    result = init(project, "--function-makefile", "--edit-template")
    assert result.returncode == 0, result.stderr
    assert "ReportWorker builds with BuildMethod python3.12: left as it is" in result.stderr
    added = added_lines(template, (project / "template.yaml").read_text())
    # ReportApi's Metadata after its Properties, at the resource's level.
    assert added == [
        *LAYER_LINES,
        "      Layers: [!Ref Psycopg2Layer]",
        "    Metadata:",
        "      BuildMethod: makefile",
        "        - !Ref Psycopg2Layer",
    ]
    assert not (project / "src" / "worker" / "Makefile").exists()
    makefile = (project / "src" / "api" / "Makefile").read_text()
    assert "build-ReportApi:" in makefile
    assert "build-layer $(DEPS)" in makefile and "build-ReportApi: DEPS := reportapi-deps" in makefile
    assert "-r src/api/requirements.txt" in makefile and '--export-function "$(ARTIFACTS_DIR)"' in makefile


def test_a_template_written_in_flow_style_is_printed_not_edited(project: Path) -> None:
    template = (
        TEMPLATE.replace(
            "      CodeUri: src/worker\n      Handler: worker.run\n      Layers:\n"
            "        - arn:aws:lambda:us-east-1:123456789012:layer:tracing:3\n      # small on purpose\n"
            "      MemorySize: 128\n",
            "      {CodeUri: src/worker, Handler: worker.run}\n",
        )
        .replace("    Properties:\n      {CodeUri", "    Properties: {CodeUri")
        .replace("      {CodeUri: src/worker, Handler: worker.run}\n", "")
    )
    assert "Properties: {CodeUri: src/worker, Handler: worker.run}" in template
    (project / "template.yaml").write_text(template)
    before = snapshot(project)
    refused = init(project, "--edit-template")
    assert refused.returncode == 2
    assert "Resources.ReportWorker.Properties is written in flow style" in refused.stderr
    assert snapshot(project) == before
    printed = init(project)
    assert printed.returncode == 0
    assert "under Resources.ReportWorker.Properties (it is written in flow style ({...}): by hand)" in (
        printed.stdout
    )


def test_a_flow_list_of_layers_gets_the_layer_in_that_list(project: Path) -> None:
    template = TEMPLATE.replace(
        "      Layers:\n        - arn:aws:lambda:us-east-1:123456789012:layer:tracing:3\n",
        '      Layers: [ "arn:aws:lambda:us-east-1:123456789012:layer:tracing:3" ]  # theirs\n',
    )
    (project / "template.yaml").write_text(template)
    assert init(project, "--edit-template").returncode == 0
    edited = (project / "template.yaml").read_text()
    changed = [
        (template.splitlines()[i1:i2], edited.splitlines()[j1:j2])
        for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(
            a=template.splitlines(), b=edited.splitlines(), autojunk=False
        ).get_opcodes()
        if tag == "replace"
    ]
    assert changed == [
        (
            ['      Layers: [ "arn:aws:lambda:us-east-1:123456789012:layer:tracing:3" ]  # theirs'],
            [
                '      Layers: [ "arn:aws:lambda:us-east-1:123456789012:layer:tracing:3", '
                "!Ref Psycopg2Layer ]  # theirs"
            ],
        )
    ]
    worker = next(
        f for f in read_template(project / "template.yaml").functions if f.logical_id == "ReportWorker"
    )
    assert worker.layers == ("Psycopg2Layer",)


def test_the_templates_own_layer_on_the_folder_is_adopted(project: Path) -> None:
    template = TEMPLATE.replace(
        "Resources:\n",
        "Resources:\n  PgLayer:\n    Type: AWS::Serverless::LayerVersion\n    Properties:\n"
        "      ContentUri: layers/psycopg2/\n\n",
    )
    (project / "template.yaml").write_text(template)
    assert init(project, "--edit-template", "--function", "ReportApi").returncode == 0
    assert "build-PgLayer:" in (project / "layers" / "psycopg2" / "Makefile").read_text()
    assert added_lines(template, (project / "template.yaml").read_text()) == [
        "    Metadata:",
        "      BuildMethod: makefile",
        "      Layers: [!Ref PgLayer]",
    ]
    conflict = init(project, "--logical-id", "OtherLayer")
    assert conflict.returncode == 2 and "already the layer PgLayer" in conflict.stderr


HOSTILE = {
    "no template": ({}, [], "no SAM template at template.yaml"),
    "not YAML": ({"template.yaml": "Resources: [unclosed\n  : :\n"}, [], "is not a YAML file"),
    "a YAML list": ({"template.yaml": "- Resources\n"}, [], "has no Resources mapping"),
    "properties not a mapping": (
        {"template.yaml": "Resources:\n  Fn:\n    Type: AWS::Serverless::Function\n    Properties: src/\n"},
        [],
        "Resources.Fn.Properties must be a mapping",
    ),
    "no Python function": (
        {"template.yaml": TEMPLATE.replace("Runtime: python3.12", "Runtime: nodejs20.x")},
        [],
        "has no Python function",
    ),
    "unknown function": ({"template.yaml": TEMPLATE}, ["--function", "ReportAPI"], "did you mean ReportApi"),
    "layer name is a path": ({"template.yaml": TEMPLATE}, ["--layer", "../x"], "is not a layer name"),
    "layer name with a space": ({"template.yaml": TEMPLATE}, ["--layer", "my deps"], "is not a layer name"),
    "packages without a name": ({"template.yaml": TEMPLATE}, ["-p", "six"], "-r and -p need a layer name"),
    "bad package spec": (
        {"template.yaml": TEMPLATE},
        ["--layer", "x", "-p", "six\n-r other"],
        "control character",
    ),
    "requirements with includes": (
        {"template.yaml": TEMPLATE, "reqs.txt": "-r base.txt\nsix\n", "base.txt": "idna\n"},
        ["--layer", "x", "-r", "reqs.txt"],
        "includes other files",
    ),
    "bad logical id": (
        {"template.yaml": TEMPLATE},
        ["--logical-id", "Psycopg2-Layer"],
        "not a CloudFormation",
    ),
    "logical id of another resource": (
        {"template.yaml": TEMPLATE},
        ["--logical-id", "ReportBucket"],
        "ReportBucket is already a resource of type AWS::S3::Bucket",
    ),
    "mixed runtimes": (
        {
            "template.yaml": TEMPLATE.replace(
                "      Handler: worker.run\n", "      Handler: worker.run\n      Runtime: python3.11\n"
            )
        },
        [],
        "different runtimes or architectures",
    ),
    "function code is the whole project": (
        {"template.yaml": TEMPLATE.replace("CodeUri: src/api/", "CodeUri: .")},
        ["--function-makefile"],
        "is the project's folder itself",
    ),
}


@pytest.mark.parametrize("files, args, message", HOSTILE.values(), ids=HOSTILE.keys())
def test_bad_input_is_a_clear_usage_error_and_writes_nothing(
    tmp_path: Path, files: dict[str, str], args: list[str], message: str
) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    (tmp_path / "src" / "api").mkdir(parents=True)
    before = snapshot(tmp_path)
    result = init(tmp_path, *args)
    assert result.returncode == 2, result.stdout
    assert message in result.stderr and "hint:" in result.stderr
    assert snapshot(tmp_path) == before and not (tmp_path / "layers").exists()
    as_json = init(tmp_path, *args, "--json")
    assert as_json.returncode == 2 and json.loads(as_json.stdout)["ok"] is False


@pytest.mark.network
def test_sam_build_builds_the_layer_and_the_function_with_lambdakit(project: Path) -> None:
    """The real `sam build` runs init's Makefiles: the layer resolved and checked by lambdakit, the
    function's requirements resolved for the runtime next to its code."""
    (project / "src" / "api" / "requirements.txt").write_text("six==1.17.0\n")
    result = init(project, "--edit-template", "--function-makefile", "--function", "ReportApi")
    assert result.returncode == 0, result.stderr
    build = subprocess.run(
        [str(BIN / "sam"), "build"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "SAM_CLI_TELEMETRY": "0"},
    )
    assert build.returncode == 0, textwrap.shorten(build.stdout[-3000:] + build.stderr[-3000:], 6000)
    built = project / ".aws-sam" / "build"
    assert (built / "Psycopg2Layer" / "python" / "psycopg2" / "__init__.py").is_file()
    assert (built / "ReportApi" / "app.py").is_file() and (built / "ReportApi" / "six.py").is_file()
    assert not (built / "ReportApi" / "Makefile").exists()
    assert (built / "ReportWorker" / "worker.py").is_file()  # not chosen: SAM's own build


def test_a_template_with_windows_line_endings_keeps_them_on_every_line(project: Path) -> None:
    template = project / "template.yaml"
    original = TEMPLATE.replace("\n", "\r\n").encode()
    template.write_bytes(original)
    result = init(project, "--edit-template")
    assert result.returncode == 0, result.stderr
    edited = template.read_bytes()
    assert b"\n" not in edited.replace(b"\r\n", b"")  # every line ends the user's way
    lines = edited.split(b"\r\n")
    assert all(line in lines for line in original.split(b"\r\n"))
    assert b"  Psycopg2Layer:" in lines


def test_a_template_that_mixes_line_endings_is_not_edited(project: Path) -> None:
    template = project / "template.yaml"
    mixed = TEMPLATE.replace("\n", "\r\n", 3).encode()
    template.write_bytes(mixed)
    result = init(project, "--edit-template")
    assert result.returncode == 2
    assert "mixes line endings" in result.stderr
    assert template.read_bytes() == mixed
    assert not (project / "layers").exists()
