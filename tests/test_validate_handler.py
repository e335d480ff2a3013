"""A function's Handler in validate_tree: what fails to load is invalid; what its module raises for
want of the function's environment is said, as a warning, and is not a failed import."""

from __future__ import annotations

from pathlib import Path

import pytest

from builder.runtimes import target
from builder.validate import validate_tree

TARGET = target("python3.12", "x86_64")


def tree(tmp_path: Path, source: str) -> Path:
    (tmp_path / "python").mkdir()
    (tmp_path / "python" / "app.py").write_text(source)
    return tmp_path


@pytest.mark.parametrize(
    ("source", "handler", "code"),
    [
        ("import no_such_module_here\n", "app.handler", "handler-not-found"),
        ("def handler(event, context):\n    return 1\n", "app.nope", "handler-not-found"),
        ("def handler(event, context)\n", "app.handler", "handler-not-found"),
    ],
)
def test_a_handler_lambda_cannot_load_is_invalid(
    tmp_path: Path, source: str, handler: str, code: str
) -> None:
    report = validate_tree(tree(tmp_path, source), TARGET, import_check="interpreter", handler=handler)
    assert report.verdict == "invalid"
    assert code in {p.code for p in report.problems if p.severity == "error"}


def test_a_handler_whose_module_needs_its_environment_is_a_warning_not_a_failure(tmp_path: Path) -> None:
    source = "import os\nQUEUE = os.environ['TASK_QUEUE_URL']\n\ndef handler(event, context):\n    return 1\n"
    report = validate_tree(tree(tmp_path, source), TARGET, import_check="interpreter", handler="app.handler")
    [problem] = [p for p in report.problems if p.path == "app.handler"]
    assert (problem.code, problem.severity) == ("handler-unproven", "warning")
    assert "KeyError: 'TASK_QUEUE_URL'" in problem.message
    # The top-level import failed for the same reason: that one stays an error, as on Lambda's
    # import of the module by name (the handler's module is the module).
    assert report.verdict == "invalid"


def test_a_handler_in_a_package_that_needs_its_environment_stays_valid(tmp_path: Path) -> None:
    (tmp_path / "python" / "svc").mkdir(parents=True)
    (tmp_path / "python" / "svc" / "__init__.py").write_text("")
    (tmp_path / "python" / "svc" / "main.py").write_text(
        "import os\nQUEUE = os.environ['TASK_QUEUE_URL']\n\ndef handler(event, context):\n    return 1\n"
    )
    report = validate_tree(tmp_path, TARGET, import_check="interpreter", handler="svc.main.handler")
    assert [(p.code, p.severity) for p in report.problems] == [("handler-unproven", "warning")]
    assert report.verdict == "valid"
    assert report.imports.modules == {"svc": None}
