"""The Docker backend's layers, checked by importing them in the runtime image (stand-ins here).

A pass in a stand-in proves layout, Python ABI and bundled libraries; the glibc
check is the static audit's (see test_standin_glibc_gap_is_left_to_the_audit).
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from builder.audit import audit_tree
from builder.backends import Resolved
from builder.layout import top_level_modules
from builder.runtimes import Target, target
from builder.verify import check_imports
from builder.verify.image import RuntimeImageChecker

# Resolves from the package index (tests/conftest.py).
pytestmark = pytest.mark.network

Layer = tuple[Path, Resolved, Target]
CHECKER = RuntimeImageChecker()


def test_binary_layer_passes_in_the_runtime_image(binary_layer_312: Layer) -> None:
    root, resolved, t = binary_layer_312
    assert resolved.distributions == {"psycopg2-binary": "2.9.11"}
    assert not (root / "lib").exists()  # the wheel carries its libraries in psycopg2_binary.libs
    # Through verify's checker list: the runtime image comes first.
    result = check_imports(root, t, top_level_modules(root, t))
    assert result.status == "passed", result
    assert result.where.startswith(f"image {t.runtime_image}")


@pytest.mark.parametrize("layer", ["source_layer_312", "source_layer_311"])
def test_source_build_bundles_libpq_and_passes(layer: str, request: pytest.FixtureRequest) -> None:
    root, resolved, t = request.getfixturevalue(layer)
    assert resolved.distributions == {"psycopg2": "2.9.10"}
    assert (root / "lib" / "libpq.so.5").is_file()
    assert any("libpq.so.5" in note for note in resolved.notes)
    extension = next((root / "python" / "psycopg2").glob("_psycopg.*.so"))
    assert t.python_tag.removeprefix("cp") in extension.name
    result = CHECKER.check(root, t, ["psycopg2"])
    assert result.status == "passed", result


def test_python_version_mismatch_is_caught(source_layer_311: Layer) -> None:
    root, _, _ = source_layer_311
    result = CHECKER.check(root, target("python3.12", source_layer_311[2].arch.name), ["psycopg2"])
    assert result.status == "failed"
    assert result.failures() == {"psycopg2": "ModuleNotFoundError: No module named 'psycopg2._psycopg'"}


def test_missing_library_is_caught(source_layer_312: Layer, copy_of: Callable[[Path], Path]) -> None:
    root, _, t = source_layer_312
    broken = copy_of(root)
    (broken / "lib" / "libpq.so.5").unlink()
    result = CHECKER.check(broken, t, ["psycopg2"])
    assert result.status == "failed"
    assert "libpq.so.5: cannot open shared object file" in result.failures()["psycopg2"]


def test_standin_glibc_gap_is_left_to_the_audit(
    source_layer_311: Layer, standin_only: Callable[[str], None]
) -> None:
    # Built on Debian (glibc 2.36), the bundled libraries need GLIBC_2.3x: the
    # python3.11 stand-in imports them, Amazon Linux 2 (glibc 2.26) would not,
    # and the static audit says so. The real build image has no such gap.
    root, _, t = source_layer_311
    standin_only(t.build_image)
    codes = {(p.code, p.path) for p in audit_tree(root, t)}
    assert ("glibc-too-new", "lib/libpq.so.5") in codes


def test_source_build_for_python312_passes_the_static_audit(source_layer_312: Layer) -> None:
    root, _, t = source_layer_312
    assert [p.to_dict() for p in audit_tree(root, t)] == []


def test_layer_sizes(
    binary_layer_312: Layer, source_layer_312: Layer, layer_sizes: dict[str, dict[str, int]], tmp_path: Path
) -> None:
    layer_sizes["psycopg2-binary (wheel)"] = tree_sizes(binary_layer_312[0], tmp_path / "binary.zip")
    layer_sizes["psycopg2 (source + lib/)"] = tree_sizes(source_layer_312[0], tmp_path / "source.zip")
    assert all(size["zipped"] < 50 * 1024 * 1024 for size in layer_sizes.values())


def tree_sizes(root: Path, zipped: Path) -> dict[str, int]:
    """Unzipped and deflated bytes of a layer tree, as Lambda counts them."""
    files = [p for p in sorted(root.rglob("*")) if p.is_file()]
    with zipfile.ZipFile(zipped, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in files:
            archive.write(path, path.relative_to(root).as_posix())
    return {"unzipped": sum(p.stat().st_size for p in files), "zipped": zipped.stat().st_size}


def test_the_build_images_interpreter_evaluates_markers_for_the_target(
    build_layer_in_docker: Callable[[str, str], Layer],
) -> None:
    """pip runs inside the target's build image, on the target's Python: its markers are the target's."""
    requirements = (
        'idna==3.10 ; python_version >= "3.12"\n'
        'tomli==2.0.1 ; python_version < "3.11"\n'
        'six==1.16.0 ; platform_machine == "aarch64"\n'
        'colorama==0.4.6 ; sys_platform == "win32"\n'
    )
    _, resolved, t = build_layer_in_docker(requirements.strip(), "python3.12")
    assert t.arch.wheel_arch != "aarch64"  # the stand-ins are for this machine's arch (x86_64 here)
    assert resolved.distributions == {"idna": "3.10"}
