"""Lambda's filesystem, in one place: where a function's and its layers' files land,
which directories the runtime searches, and which files Python can import."""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from builder.runtimes import Target

# Layers are unzipped to /opt, the function's package to /var/task; the runtime's own
# Python packages (awslambdaric, boto3) sit in /var/runtime.
OPT_DIR = "/opt"
TASK_ROOT = "/var/task"
RUNTIME_DIR = "/var/runtime"
LANG_DIR = "/var/lang"  # the runtime's Python: /var/lang/bin/python3.X
# Inside a layer, the only places the runtime looks.
PYTHON_DIR = "python"
LIB_DIR = "lib"
BIN_DIR = "bin"
# Lambda's PATH and LD_LIBRARY_PATH, in order.
PATH = (f"{LANG_DIR}/bin", "/usr/local/bin", "/usr/bin/", "/bin", f"{OPT_DIR}/{BIN_DIR}")
# LD_LIBRARY_PATH: the runtime's own directories, the function's, the layers' lib/.
LD_LIBRARY_PATH = (
    f"{LANG_DIR}/lib", "/lib64", "/usr/lib64", RUNTIME_DIR, f"{RUNTIME_DIR}/lib",
    TASK_ROOT, f"{TASK_ROOT}/lib", f"{OPT_DIR}/{LIB_DIR}",
)  # fmt: skip

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


def import_key(entry: Path) -> str:
    """What Python finds an entry of a sys.path directory as: its top-level name for a package,
    namespace portion or module (foo/, foo.py, foo.cpython-312-x86_64-linux-gnu.so and foo.abi3.so
    are all "foo"), its distribution for a .dist-info, else the entry's own name."""
    name = entry.name
    if name.endswith(".dist-info"):
        return "dist-info:" + name.split("-", 1)[0].lower().replace("_", "-").replace(".", "-")
    if entry.is_dir():
        return name
    stem = name.split(".", 1)[0]
    if stem.isidentifier() and name.endswith((".py", ".so")):
        return stem
    return name


def import_entries(directory: Path) -> dict[str, list[Path]]:
    found: dict[str, list[Path]] = {}
    for entry in sorted(directory.iterdir()):
        found.setdefault(import_key(entry), []).append(entry)
    return found


def namespace_portion(entries: list[Path]) -> bool:
    """Only directories without __init__.py (PEP 420): Python goes on looking in later sys.path
    entries, and any regular package or module found there wins over them."""
    return all(e.is_dir() and not e.is_symlink() and not (e / "__init__.py").exists() for e in entries)


def apply_shadowing(upper: Path, lower: Path) -> set[Path]:
    """Make the sys.path directory `lower` hold only what Python still finds in it with `upper`
    earlier on sys.path, and return what of `upper` is hidden by `lower` in turn.

    A regular package or module in `upper` hides `lower`'s whole copy, whatever its file
    names (/var/task/psycopg2/ hides /opt/python/psycopg2/; foo.py hides foo/). A namespace
    portion in `upper` is hidden by a regular package or module in `lower`; two namespace
    portions combine, name by name. Copy `upper` over `lower` without what is returned.
    """
    hidden_in_upper: set[Path] = set()
    lower_entries = import_entries(lower)
    for key, entries in import_entries(upper).items():
        found = lower_entries.get(key)
        if not found:
            continue
        if not namespace_portion(entries):
            for path in found:
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink()
        elif not namespace_portion(found):
            hidden_in_upper.update(entries)
        else:
            for entry in entries:
                hidden_in_upper |= apply_shadowing(entry, lower / entry.name)
    return hidden_in_upper
