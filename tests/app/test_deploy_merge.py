"""Layers merged into function packages (LocalStack does not apply them), on trees the test builds."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from builder.app.deploy import validate_function
from builder.app.merge import merge_layers
from builder.app.sam_build import SAM_BUILD_DIR
from builder.app.template import read_template
from builder.errors import UsageError

from .conftest import write

SITE = "python/lib/python3.12/site-packages"


def sam_build_output(project: Path) -> Path:
    """What `sam build` leaves: the layer under its logical id, each function package under its own."""
    build = project / SAM_BUILD_DIR
    layer = build / "DepsLayer"
    write(layer / "python/dep/__init__.py", "VALUE = 'from the layer'\n")
    write(layer / "python/dep/_speedups.cpython-312-x86_64-linux-gnu.so", "not really ELF")
    write(layer / "python/shared.py", "WHO = 'layer'\n")
    write(layer / SITE / "sitepkg.py", "X = 1\n")
    write(layer / "lib/libpq.so.5", "a library")
    write(layer / "bin/pg_tool", "#!/bin/sh\n")
    for function in ("ApiFunction", "WorkerFunction"):
        write(
            build / function / f"{function.lower()}.py",
            "import dep\n\ndef handler(event, context): return {}\n",
        )
    # The API ships its own shared.py: on Lambda /var/task comes first, so it must win.
    write(build / "ApiFunction/shared.py", "WHO = 'function'\n")
    # The worker already has an identical copy (e.g. built with the layer bundled).
    write(build / "WorkerFunction/shared.py", "WHO = 'layer'\n")
    return build


def test_layer_content_lands_where_the_runtime_looks(project: Path) -> None:
    build = sam_build_output(project)
    records = merge_layers(read_template(project / "template.yaml"), build, project)

    assert [(r.function, r.layer) for r in records] == [
        ("ApiFunction", "DepsLayer"),
        ("WorkerFunction", "DepsLayer"),
    ]
    for function in ("ApiFunction", "WorkerFunction"):
        package = build / function
        # /opt/python and its site-packages -> the package root (on sys.path like /var/task)
        assert (package / "dep/__init__.py").read_text() == "VALUE = 'from the layer'\n"
        assert (package / "dep/_speedups.cpython-312-x86_64-linux-gnu.so").is_file()
        assert (package / "sitepkg.py").is_file()
        # /opt/lib -> /var/task/lib, which is on LD_LIBRARY_PATH too
        assert (package / "lib/libpq.so.5").is_file()
        # python/lib/python3.12 is a sys.path entry, not a package to copy as such
        assert not (package / "lib/python3.12").exists()
        assert not (package / "bin").exists()

    api, worker = records
    assert (build / "ApiFunction/shared.py").read_text() == "WHO = 'function'\n"
    assert api.kept == ("ApiFunction/shared.py",)
    assert worker.kept == ()
    assert api.copied == worker.copied == 4
    assert api.skipped == worker.skipped == ("bin",)
    assert api.source == str(build / "DepsLayer")


def test_a_package_the_function_ships_shadows_the_layers_whole_copy(project: Path) -> None:
    """As on Lambda: Python finds /var/task/dep/ first and never looks into the layer's dep/.

    A file-by-file merge would add the layer's compiled module to the function's
    own (broken) package and hide the failure that Lambda would show.
    """
    build = sam_build_output(project)
    write(build / "WorkerFunction/dep/__init__.py", "from dep._speedups import VALUE\n")
    records = merge_layers(read_template(project / "template.yaml"), build, project)

    assert not (build / "WorkerFunction/dep/_speedups.cpython-312-x86_64-linux-gnu.so").exists()
    assert records[1].kept == ("WorkerFunction/dep",)
    # A namespace package (no __init__.py) is the one case where both portions count.
    write(build / "ApiFunction/ns/own.py", "")
    write(build / "DepsLayer/python/ns/theirs.py", "")
    merge_layers(read_template(project / "template.yaml"), build, project)
    assert (build / "ApiFunction/ns/theirs.py").is_file()


def test_merge_again_copies_nothing(project: Path) -> None:
    build = sam_build_output(project)
    app = read_template(project / "template.yaml")
    merge_layers(app, build, project)
    again = merge_layers(app, build, project)
    assert [r.copied for r in again] == [0, 0]


def test_falls_back_to_lambdakits_published_layer(project: Path) -> None:
    build = sam_build_output(project)
    shutil.rmtree(build / "DepsLayer")
    write(project / "build/layers/deps/tree/python/published.py", "")
    records = merge_layers(read_template(project / "template.yaml"), build, project)
    assert records[0].source == str(project / "build/layers/deps/tree")
    assert (build / "ApiFunction/published.py").is_file()


def test_no_layer_content_anywhere(project: Path) -> None:
    build = sam_build_output(project)
    shutil.rmtree(build / "DepsLayer")
    with pytest.raises(UsageError, match="no built content for layer DepsLayer"):
        merge_layers(read_template(project / "template.yaml"), build, project)


def test_function_package_alone_imports_once_merged(project: Path) -> None:
    """Validated as LocalStack Community runs it, without the layer: the handler's `import dep` works."""
    build = sam_build_output(project)
    app = read_template(project / "template.yaml")
    api = app.functions[0]
    before = validate_function(app, api, build, merged=True)
    assert before.verdict == "invalid"
    assert "No module named 'dep'" in str(before.imports.modules["apifunction"])

    # Where layers are applied, the same package is checked together with its layer.
    assert validate_function(app, api, build, merged=False).imports.modules["apifunction"] is None

    merge_layers(app, build, project)
    after = validate_function(app, api, build, merged=True)
    assert after.imports.modules["apifunction"] is None
    assert after.imports.modules["dep"] is None


def test_validation_sees_a_shipped_package_hide_the_layers_copy(project: Path) -> None:
    """The function's own dep2/ lacks a module the layer's dep2/ has: on Lambda the import fails,
    because Python never looks into the layer's dep2/ once /var/task/dep2/ is found."""
    build = sam_build_output(project)
    write(build / "DepsLayer/python/dep2/__init__.py", "")
    write(build / "DepsLayer/python/dep2/extra.py", "X = 1\n")
    write(build / "WorkerFunction/dep2/__init__.py", "from dep2.extra import X\n")
    write(
        build / "WorkerFunction/workerfunction.py",
        "import dep, dep2\n\ndef handler(event, context): return {}\n",
    )
    app = read_template(project / "template.yaml")
    worker = app.functions[1]

    report = validate_function(app, worker, build, merged=False)
    assert report.verdict == "invalid"
    assert "No module named 'dep2.extra'" in str(report.imports.modules["dep2"])
    # The layer's other packages stay visible.
    assert report.imports.modules["dep"] is None


def test_a_module_the_function_ships_hides_a_layer_package_of_the_same_name(project: Path) -> None:
    """/var/task/dep.py is found before /opt/python/dep/: file names differ, the import name does not."""
    build = sam_build_output(project)
    write(build / "WorkerFunction/dep.py", "raise ImportError('the function shipped a broken dep')\n")
    app = read_template(project / "template.yaml")
    worker = app.functions[1]

    report = validate_function(app, worker, build, merged=False)
    assert "the function shipped a broken dep" in str(report.imports.modules["dep"])

    records = merge_layers(app, build, project)
    assert not (build / "WorkerFunction/dep").exists()
    assert "WorkerFunction/dep.py" in records[1].kept
