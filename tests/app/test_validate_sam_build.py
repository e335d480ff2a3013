"""`lambdakit validate` on what `sam build` wrote for a project that is not lambdakit's.

The project is written here with its own names (OrdersFn, SharedLayer), built by the real
SAM CLI with its own Python builder (no lambdakit in its build), then validated. The broken
cases are that build output with one thing changed, and build outputs written by hand.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from builder.app.sam_build import find_sam_build, validate_sam_build
from builder.host import find_interpreter

# The tests on the real `sam build`'s output: it resolves six from the package index.
needs_index = pytest.mark.network

BIN = Path(sys.executable).parent

TEMPLATE = """\
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Globals:
  Function:
    Runtime: python3.12
    Architectures: [x86_64]
    Timeout: 10
Resources:
  SharedLayer:
    Type: AWS::Serverless::LayerVersion
    Properties:
      ContentUri: shared/
      CompatibleRuntimes: [python3.12]
    Metadata:
      BuildMethod: python3.12
  OrdersFn:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: orders/
      Handler: app.handler
      Layers: [!Ref SharedLayer]
"""


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


@pytest.fixture(scope="module")
def sam_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The foreign project, after a real `sam build` (about 10 s, once for the module)."""
    project = tmp_path_factory.mktemp("orders-project")
    _write(
        project,
        {
            "template.yaml": TEMPLATE,
            "orders/app.py": """\
                import six


                def handler(event, context):
                    return {"six": six.__version__}
            """,
            "orders/requirements.txt": "six==1.16.0\n",
            "shared/requirements.txt": "six==1.16.0\n",
        },
    )
    # SAM's Python builder runs pip with a python3.12 it finds on PATH.
    python = find_interpreter("3.12")
    assert python is not None, "sam build needs a local python3.12 (pyenv's, /usr/bin or /usr/local/bin)"
    env = {**os.environ, "PATH": f"{python.parent}:{BIN}:{os.environ['PATH']}", "SAM_CLI_TELEMETRY": "0"}
    result = subprocess.run(
        [str(BIN / "sam"), "build"], cwd=project, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return project


@pytest.fixture
def build_copy(sam_project: Path, tmp_path: Path) -> Path:
    """A copy of the build output that a test may damage."""
    copy = tmp_path / "build"
    shutil.copytree(sam_project / ".aws-sam" / "build", copy, symlinks=True)
    return copy


def _validate(*args: str, cwd: Path) -> tuple[int, dict, str]:
    result = subprocess.run(
        [str(BIN / "lambdakit"), "validate", *args, "--json"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, json.loads(result.stdout), result.stderr


def _artifacts(document: dict) -> dict[tuple[str, str], dict]:
    return {(a["kind"], a["logical_id"]): a for a in document["artifacts"]}


def _codes(artifact: dict) -> list[str]:
    problems = artifact["problems"] + (artifact["report"]["problems"] if artifact["report"] else [])
    return [p["code"] for p in problems]


@needs_index
def test_the_build_output_is_valid_function_with_its_layer_and_the_layer_alone(sam_project: Path) -> None:
    code, document, _ = _validate(".aws-sam/build", cwd=sam_project)

    assert code == 0, json.dumps(document, indent=1)
    assert (document["schema"], document["ok"], document["verdict"]) == (1, True, "valid")
    assert document["template"] == ".aws-sam/build/template.yaml"
    artifacts = _artifacts(document)
    assert set(artifacts) == {("function", "OrdersFn"), ("layer", "SharedLayer")}
    function = artifacts["function", "OrdersFn"]
    # Runtime and architecture come from Globals; the handler was imported and looked up.
    assert (function["runtime"], function["arch"], function["path"]) == (
        "python3.12",
        "x86_64",
        ".aws-sam/build/OrdersFn",
    )
    assert function["report"]["imports"]["modules"] == {"app": None, "six": None, "app:handler": None}
    layer = artifacts["layer", "SharedLayer"]
    assert (layer["runtime"], layer["arch"], layer["verdict"]) == ("python3.12", "x86_64", "valid")
    assert layer["report"]["imports"]["modules"] == {"six": None}


@needs_index
def test_the_project_root_means_its_build_output_and_text_ends_with_a_summary(sam_project: Path) -> None:
    assert find_sam_build(sam_project) == sam_project / ".aws-sam" / "build"
    result = subprocess.run(
        [str(BIN / "lambdakit"), "validate", "."],
        cwd=sam_project,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "function OrdersFn (python3.12 x86_64): VALID"
    assert "layer SharedLayer (python3.12 x86_64): VALID" in lines
    assert lines[-1] == ".aws-sam/build/template.yaml: VALID (2 valid of 2 artifacts)"


@needs_index
def test_a_handler_naming_a_missing_function_is_reported(build_copy: Path) -> None:
    template = build_copy / "template.yaml"
    template.write_text(template.read_text().replace("Handler: app.handler", "Handler: app.handle"))

    code, document, _ = _validate(str(build_copy), cwd=build_copy.parent)

    assert (code, document["verdict"]) == (1, "invalid")
    function = _artifacts(document)["function", "OrdersFn"]
    [problem] = function["report"]["problems"]
    assert (problem["code"], problem["path"]) == ("handler-not-found", "app.handle")
    assert "has no attribute 'handle'" in problem["message"]
    # The module itself imports: the problem is the name, not the code.
    assert function["report"]["imports"]["modules"]["app"] is None
    assert _artifacts(document)["layer", "SharedLayer"]["verdict"] == "valid"


@needs_index
def test_a_handler_that_is_no_module_dot_function(build_copy: Path) -> None:
    template = build_copy / "template.yaml"
    template.write_text(template.read_text().replace("Handler: app.handler", "Handler: handler"))

    code, document, _ = _validate(str(build_copy), cwd=build_copy.parent)

    assert code == 1
    problems = _artifacts(document)["function", "OrdersFn"]["report"]["problems"]
    assert [(p["code"], p["path"]) for p in problems] == [("handler-not-found", "handler")]
    assert "module.function" in problems[0]["message"]


@needs_index
def test_a_runtime_lambdakit_does_not_know_is_a_problem_naming_it(build_copy: Path) -> None:
    template = build_copy / "template.yaml"
    template.write_text(template.read_text().replace("Runtime: python3.12", "Runtime: python3.8"))

    code, document, _ = _validate(str(build_copy), cwd=build_copy.parent)

    assert (code, document["ok"]) == (1, False)
    function = _artifacts(document)["function", "OrdersFn"]
    assert (function["runtime"], function["verdict"], function["report"]) == ("python3.8", "invalid", None)
    [problem] = function["problems"]
    assert problem["code"] == "unknown-runtime"
    assert "python3.8" in problem["message"] and "python3.12" in problem["message"]
    assert "Runtime" in problem["hint"]


@needs_index
def test_a_deleted_code_folder_is_a_problem_not_a_crash(build_copy: Path) -> None:
    shutil.rmtree(build_copy / "OrdersFn")

    code, document, _ = _validate(str(build_copy), cwd=build_copy.parent)

    assert (code, document["verdict"]) == (1, "invalid")
    function = _artifacts(document)["function", "OrdersFn"]
    assert _codes(function) == ["missing-folder"]
    assert function["report"]["imports"]["status"] == "not-verified"
    # The layer is still checked on its own.
    assert _artifacts(document)["layer", "SharedLayer"]["verdict"] == "valid"


@needs_index
def test_the_template_says_the_target_so_the_options_are_refused(build_copy: Path) -> None:
    for options in (["--runtime", "python3.11"], ["--arch", "arm64"], ["--function"]):
        code, document, _ = _validate(str(build_copy), *options, cwd=build_copy.parent)
        assert (code, document["error"]) == (2, "UsageError"), options
        assert options[0] in document["message"]


def test_a_project_that_was_never_built_is_refused_with_what_to_run(tmp_path: Path) -> None:
    _write(tmp_path, {"template.yaml": TEMPLATE, "orders/app.py": "def handler(event, context):\n    pass\n"})

    code, document, _ = _validate(str(tmp_path), cwd=tmp_path)

    assert (code, document["error"]) == (2, "UsageError")
    assert "not `sam build`'s output" in document["message"]
    assert "sam build" in document["hint"]


def test_a_template_that_is_no_mapping_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "template.yaml").write_text("- just\n- a list\n")
    code, document, _ = _validate(str(tmp_path), cwd=tmp_path)
    assert (code, document["error"]) == (2, "UsageError")
    assert "not a SAM template" in document["message"]


HAND_MADE = """\
Transform: AWS::Serverless-2016-10-31
Resources:
  GreetingLayer:
    Type: AWS::Serverless::LayerVersion
    Properties:
      ContentUri: GreetingLayer
  OldLayer:
    Type: AWS::Serverless::LayerVersion
    Properties:
      ContentUri: OldLayer
      CompatibleRuntimes: [python3.11]
  LooseLayer:
    Type: AWS::Serverless::LayerVersion
    Properties:
      ContentUri: LooseLayer
  HelloFn:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: HelloFn
      Handler: hello/main.entry
      Runtime: python3.12
      Layers:
        - Ref: GreetingLayer
  WebFn:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: WebFn
      Handler: index.handler
      Runtime: nodejs20.x
"""


def test_a_hand_made_build_with_a_layer_a_function_imports(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "template.yaml": HAND_MADE,
            # Only the layer provides greeting: the function imports only with its layer present.
            "HelloFn/hello/__init__.py": "",
            "HelloFn/hello/main.py": "from greeting import greet\n\n\ndef entry(event, context):\n"
            "    return greet()\n",
            "GreetingLayer/python/greeting.py": "def greet():\n    return 'hello'\n",
            "OldLayer/python/legacy.py": "VALUE = 1\n",
            "LooseLayer/python/loose.py": "VALUE = 2\n",
            "WebFn/index.js": "exports.handler = async () => 'hi';\n",
        },
    )

    report = validate_sam_build(tmp_path)

    by_id = {(a.kind, a.logical_id): a for a in report.artifacts}
    hello = by_id["function", "HelloFn"]
    assert hello.verdict == "valid", hello.to_dict()
    assert hello.report is not None
    assert hello.report.imports.modules == {"greeting": None, "hello": None, "hello.main:entry": None}
    assert by_id["layer", "GreetingLayer"].verdict == "valid"
    # Used by no function: validated for the first runtime it declares, else not at all (never a pass).
    old = by_id["layer", "OldLayer"]
    assert (old.runtime, old.arch, old.verdict) == ("python3.11", "x86_64", "valid")
    loose = by_id["layer", "LooseLayer"]
    assert (loose.verdict, loose.report) == ("not-verified", None)
    assert loose.note.startswith("not validated: no runtime known")
    web = by_id["function", "WebFn"]
    assert web.verdict == "not-verified"
    assert web.note == "not validated: its runtime 'nodejs20.x' is not a Python runtime"
    assert report.verdict == "not-verified"

    # The command says the same, and exits with the worst artifact's code.
    code, document, _ = _validate(".", cwd=tmp_path)
    assert (code, document["verdict"], document["template"]) == (3, "not-verified", "template.yaml")
    verdicts = {a["logical_id"]: a["verdict"] for a in document["artifacts"]}
    assert verdicts == {a.logical_id: a.verdict for a in report.artifacts}


def test_a_missing_layer_is_a_problem_of_the_function_that_uses_it(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "template.yaml": HAND_MADE,
            "HelloFn/hello/__init__.py": "",
            "HelloFn/hello/main.py": "from greeting import greet\n\n\ndef entry(event, context):\n"
            "    return greet()\n",
        },
    )

    report = validate_sam_build(tmp_path)

    hello = next(a for a in report.artifacts if a.logical_id == "HelloFn")
    assert hello.report is not None
    codes = [p.code for p in hello.report.problems]
    assert codes[0] == "missing-folder" and "GreetingLayer" in hello.report.problems[0].message
    # Without its layer the handler's module cannot import: that is said too.
    assert "handler-not-found" in codes
    assert (
        hello.report.imports.modules["hello.main:entry"] == "ModuleNotFoundError: No module named 'greeting'"
    )
    assert report.verdict == "invalid"
