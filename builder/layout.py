"""Where a layer's files land at /opt, and which of them Python can import."""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from builder.runtimes import Target

# A layer is unzipped to /opt; these are the only places the runtime looks.
PYTHON_DIR = "python"
LIB_DIR = "lib"
BIN_DIR = "bin"

_NOT_MODULES = (".dist-info", ".egg-info", ".libs", ".data")

# An extension module's file name: MODULE.TAG.so (or .pyd on Windows), where TAG
# is abi3 or names the Python and the platform: cpython-312-x86_64-linux-gnu,
# cpython-36m-darwin, cp310-win_amd64, pypy310-pp73-x86_64-linux-gnu.
_EXTENSION = re.compile(r"(?P<module>[A-Za-z_]\w*)\.(?P<tag>[^.]+)\.(so|pyd)")
_INTERPRETER_TAG = re.compile(
    r"(?P<interpreter>cpython-\d+[a-z]*|cp\d+[a-z]*|pypy\d+-pp\d+|graalpy\d+(?:-\d+)?)-(?P<platform>.+)"
)


@dataclass(frozen=True, kw_only=True)
class ExtensionName:
    module: str
    tag: str
    interpreter: str | None  # None for abi3
    platform: str | None

    def loads_on(self, target: Target) -> bool:
        return f".{self.tag}.so" in target.extension_suffixes


def extension_name(name: str) -> ExtensionName | None:
    """What an extension module's file name says; None for a name without a Python tag."""
    match = _EXTENSION.fullmatch(name)
    if match is None:
        return None
    if match["tag"] == "abi3":
        return ExtensionName(module=match["module"], tag="abi3", interpreter=None, platform=None)
    tag = _INTERPRETER_TAG.fullmatch(match["tag"])
    if tag is None:
        return None
    return ExtensionName(
        module=match["module"], tag=match["tag"], interpreter=tag["interpreter"], platform=tag["platform"]
    )


def sys_path_dirs(root: Path, target: Target) -> list[Path]:
    """The layer directories the runtime puts on sys.path, in its order."""
    candidates = [root / PYTHON_DIR, root / target.site_packages]
    return [d for d in candidates if d.is_dir()]


def module_name(entry: Path) -> str | None:
    """The importable top-level name an entry of a sys.path directory provides."""
    name = entry.name
    if entry.is_dir():
        if name.endswith(_NOT_MODULES) or name == "__pycache__" or not name.isidentifier():
            return None
        has_python = any(entry.glob("*.py")) or any(entry.glob("*.so"))
        return name if has_python or any(entry.glob("*/__init__.py")) else None
    if name.endswith(".py"):
        stem = name[: -len(".py")]
        return stem if stem.isidentifier() else None
    if name.endswith(".so"):
        stem = name.split(".", 1)[0]
        return stem if stem.isidentifier() else None
    return None


def top_level_modules(root: Path, target: Target) -> list[str]:
    """Every top-level module the layer provides, sorted, without duplicates."""
    names: set[str] = set()
    for directory in sys_path_dirs(root, target):
        for entry in directory.iterdir():
            if directory == root / PYTHON_DIR and entry.name == "lib":
                continue  # python/lib/pythonX.Y/site-packages is its own sys.path entry
            name = module_name(entry)
            if name is not None:
                names.add(name)
    return sorted(names)


def namespace_portions(a: Path, b: Path) -> bool:
    """Both are portions of one namespace package (PEP 420: no __init__.py), which Python
    combines across sys.path entries; any other module or package is found whole in one entry."""
    return all(p.is_dir() and not p.is_symlink() and not (p / "__init__.py").exists() for p in (a, b))


def remove_shadowed(upper: Path, lower: Path) -> None:
    """Remove from the sys.path directory `lower` what `upper`, earlier on sys.path, shadows.

    Python takes a top-level module or regular package from the first entry that has
    it and never looks into a later one's copy: /var/task/psycopg2/ hides a layer's
    whole /opt/python/psycopg2/, not file by file.
    """
    for entry in upper.iterdir():
        hidden = lower / entry.name
        if not (hidden.exists() or hidden.is_symlink()):
            continue
        if namespace_portions(entry, hidden):
            remove_shadowed(entry, hidden)
        elif hidden.is_dir() and not hidden.is_symlink():
            shutil.rmtree(hidden)
        else:
            hidden.unlink()
