from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from builder import DATA_DIR
from builder.audit import base_libraries as module
from builder.audit.base_libraries import base_libraries
from builder.runtimes import CatalogueError, all_targets, target

PY312_ARM = target("python3.12", "arm64")
PY311 = target("python3.11", "x86_64")


def test_base_libraries_are_data_for_every_runtime() -> None:
    for each in all_targets():
        names = base_libraries(each)
        assert {"libc.so.6", "libm.so.6", each.arch.dynamic_loader} <= names
        assert f"libpython{each.version}.so.1.0" in names
        assert all(".so" in name and "{" not in name for name in names)
    assert "libssl.so.10" in base_libraries(PY311)
    assert "libssl.so.3" not in base_libraries(PY311)
    assert "ld-linux-aarch64.so.1" in base_libraries(PY312_ARM)


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A copy of the shipped data the test may break; the cached catalogue is read afresh from it."""
    (tmp_path / "base-libraries.json").write_text((DATA_DIR / "base-libraries.json").read_text())
    monkeypatch.setattr(module, "DATA_DIR", tmp_path)
    module._catalogue.cache_clear()
    yield tmp_path
    module._catalogue.cache_clear()


def _break(data: dict[str, Any], fault: str) -> None:
    row = data["operating_systems"]["amazonlinux2023"]
    if fault == "lacks an os":
        del data["operating_systems"]["amazonlinux2"]
    elif fault == "no source":
        row["source"] = ""
    elif fault == "twice":
        row["libraries"].append(row["libraries"][0])
    elif fault == "no libc":
        row["libraries"].remove("libc.so.6")
    elif fault == "unknown placeholder":
        row["libraries"].append("libfoo{arch}.so")


@pytest.mark.parametrize("fault", ["lacks an os", "no source", "twice", "no libc", "unknown placeholder"])
def test_the_data_is_checked_when_loaded(data_dir: Path, fault: str) -> None:
    path = data_dir / "base-libraries.json"
    data = json.loads(path.read_text())
    _break(data, fault)
    path.write_text(json.dumps(data))

    with pytest.raises(CatalogueError, match=r"base-libraries\.json"):
        base_libraries(PY311)
