"""The audit's rules: each takes a layer tree and a Target and returns the problems it finds.

The tree reads every binary at most once; the rules only judge the facts it hands out.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path
from typing import Any

from builder import DATA_DIR
from builder.audit.elf import BinaryFormat, ElfFacts, ElfReadError, binary_format, read_elf
from builder.layout import BIN_DIR, LD_LIBRARY_PATH, LIB_DIR, OPT_DIR, PYTHON_DIR, TASK_ROOT, extension_name
from builder.problems import Problem, Severity
from builder.runtimes import CatalogueError, Target, all_targets
from builder.units import MB, megabytes

# RPATHs and LD_LIBRARY_PATH name a layer's files under the mount point.
MOUNT = OPT_DIR
# On Lambda's LD_LIBRARY_PATH (layout.LD_LIBRARY_PATH) the runtime's own directories
# (base-libraries.json) come first, the function's /var/task is not the layer's to rely on,
# and the layer's lib/ comes last. TASK_ROOT is also the process's working directory: where
# a relative RPATH entry points.
LAYER_LIBRARY_PATH = LD_LIBRARY_PATH[-1]

# Lambda's errors quote the byte counts: "Unzipped size must be smaller than 262144000 bytes", and for a
# direct upload "Request must be smaller than 69905067 bytes", which is 50 MiB once base64-encoded.
UNZIPPED_LIMIT = 250 * MB
ZIPPED_LIMIT = 50 * MB

_LINUX_OSABIS = ("ELFOSABI_SYSV", "ELFOSABI_LINUX")
_FORMAT_NAMES: dict[BinaryFormat, str] = {"macho": "Mach-O (macOS)", "pe": "PE (Windows)"}
_SHARED_OBJECT = re.compile(r"\.so(\.\d+)*$|\.(pyd|dylib|dll)$")
_LIBPYTHON = re.compile(r"libpython(?P<version>\d+\.\d+)[a-z]*\.so(\.[\d.]+)?")
_VERSION_DIR = re.compile(r"python\d+\.\d+")
# auditwheel renames the libraries it grafts into a wheel: libpq-9b38f5e3.so.5.17.
_GRAFTED = re.compile(r".+-[0-9a-f]{8}\.so(\.\d+)*")

Check = Callable[["LayerTree", Target], list[Problem]]


class LayerTree:
    """A layer's unpacked files; each binary is read at most once, whichever rules ask."""

    def __init__(self, root: Path) -> None:
        if not root.is_dir():
            raise NotADirectoryError(f"{root} is not a directory")
        self.root = root
        self._real_root = root.resolve()
        # Symbolic links (to files or folders), by their path: rel -> what they point to.
        self.links: dict[str, str] = {}
        # Folders os.walk could not list (no permission): nothing in them was checked.
        self.unreadable: dict[str, str] = {}
        self.files: tuple[str, ...] = tuple(sorted(self._walk()))
        self._file_set = frozenset(self.files)
        self._facts: dict[str, ElfFacts | ElfReadError] = {}

    def _walk(self) -> Iterator[str]:
        def note(err: OSError) -> None:
            rel = Path(err.filename).relative_to(self.root).as_posix() if err.filename else "."
            self.unreadable[rel] = err.strerror or str(err)

        for directory, folders, names in os.walk(self.root, onerror=note):
            for name in names + folders:
                path = Path(directory, name)
                rel = path.relative_to(self.root).as_posix()
                # A link is audited through what it points to (see check_links), never as a file of its own.
                if path.is_symlink():
                    self.links[rel] = os.readlink(path)
                elif name in names and path.is_file():
                    yield rel

    def link_target(self, rel: str) -> str | None:
        """The layer path a link resolves to, None when that is outside the layer or nothing."""
        real = Path(os.path.realpath(self.root / rel))
        if not real.is_relative_to(self._real_root) or not real.exists():
            return None
        return real.relative_to(self._real_root).as_posix()

    @cached_property
    def binaries(self) -> dict[str, BinaryFormat]:
        """Every file that is a binary of any format, by its path in the layer."""
        found: dict[str, BinaryFormat] = {}
        for rel in self.files:
            if _worth_reading(rel):
                kind = binary_format(self.root / rel)
                if kind != "other":
                    found[rel] = kind
        return found

    @cached_property
    def unzipped_bytes(self) -> int:
        return sum((self.root / rel).stat().st_size for rel in self.files)

    def elf(self, rel: str) -> ElfFacts | ElfReadError:
        if rel not in self._facts:
            try:
                self._facts[rel] = read_elf(self.root / rel)
            except ElfReadError as err:
                self._facts[rel] = err
        return self._facts[rel]

    def elves(self) -> Iterator[tuple[str, ElfFacts]]:
        """Every ELF file that could be read, with its facts."""
        for rel, kind in self.binaries.items():
            if kind == "elf" and isinstance(facts := self.elf(rel), ElfFacts):
                yield rel, facts

    def file_at(self, mounted: str) -> str | None:
        """The layer file the runtime would open at this absolute path, following symlinks in the layer."""
        if not mounted.startswith(MOUNT + "/"):
            return None
        real = Path(os.path.realpath(self.root / mounted[len(MOUNT) + 1 :]))
        if not real.is_relative_to(self._real_root):
            return None
        rel = real.relative_to(self._real_root).as_posix()
        return rel if rel in self._file_set else None


def _worth_reading(rel: str) -> bool:
    parts = rel.split("/")
    if _SHARED_OBJECT.search(parts[-1]) or parts[0] in (LIB_DIR, BIN_DIR):
        return True
    # Executables shipped inside packages have no suffix; metadata files without one are skipped.
    return "." not in parts[-1] and not any(part.endswith((".dist-info", ".egg-info")) for part in parts)


def _fits(facts: ElfFacts, target: Target) -> bool:
    return target.arch.runs(facts.machine, facts.elf_class)


def _package(rel: str) -> str | None:
    """The top-level package a layer file belongs to, for hints; None outside python/."""
    parts = rel.split("/")
    if parts[0] != PYTHON_DIR or len(parts) < 2:
        return None
    rest = parts[1:]
    if len(rest) > 3 and rest[0] == "lib" and rest[2] == "site-packages":
        rest = rest[3:]
    name = rest[0].removesuffix(".libs")
    return name.split(".")[0] if len(rest) == 1 else name


def _problem(code: str, path: str, message: str, hint: str, *, warning: bool = False) -> Problem:
    severity: Severity = "warning" if warning else "error"
    return Problem(code=code, path=path, message=message, hint=hint, severity=severity)


# --- unreadable ------------------------------------------------------------------------------------


def check_readable(tree: LayerTree, target: Target) -> list[Problem]:
    """A folder that could not be listed was never checked: never a silent pass."""
    return [
        _problem(
            "unreadable",
            rel,
            f"{rel} could not be read ({reason}): nothing in it was checked",
            "make the layer's files readable (Lambda reads them as an unprivileged user too)",
        )
        for rel, reason in sorted(tree.unreadable.items())
    ]


# --- escaping-link --------------------------------------------------------------------------------


def check_links(tree: LayerTree, target: Target) -> list[Problem]:
    """A link inside the layer is zipped as a link and audited as the file it names; one that leads
    outside the layer (or nowhere) would ship whatever is there, which no rule has seen."""
    return [
        _problem(
            "escaping-link",
            rel,
            f"{rel} is a symbolic link to {link!r}, which is outside the layer or does not exist",
            "copy the file into the layer instead of linking to it",
        )
        for rel, link in sorted(tree.links.items())
        if tree.link_target(rel) is None
    ]


# --- bad-layout ---------------------------------------------------------------------------------


def check_layout(tree: LayerTree, target: Target) -> list[Problem]:
    problems = []
    for entry in sorted(tree.root.iterdir()):
        if entry.name not in (PYTHON_DIR, LIB_DIR, BIN_DIR) and _is_python(entry):
            shown = entry.name + ("/" if entry.is_dir() else "")
            problems.append(
                _problem(
                    "bad-layout",
                    shown,
                    f"{shown} sits at the layer root: Lambda unpacks it to {MOUNT}/{entry.name}, "
                    f"which is not on sys.path, so it cannot be imported",
                    f"zip the layer so that it holds {PYTHON_DIR}/{entry.name} "
                    f"(or {target.site_packages}/{entry.name})",
                )
            )
    python = tree.root / PYTHON_DIR
    expected = f"python{target.version}"
    if (python / "lib").is_dir() and not (python / "lib" / "__init__.py").exists():
        for entry in sorted((python / "lib").iterdir()):
            if _VERSION_DIR.fullmatch(entry.name) and entry.name != expected:
                problems.append(
                    _problem(
                        "bad-layout",
                        f"{PYTHON_DIR}/lib/{entry.name}/",
                        f"{PYTHON_DIR}/lib/{entry.name}/ holds packages for Python {entry.name[6:]}; "
                        f"{target.runtime} only reads {PYTHON_DIR}/ and {target.site_packages}/",
                        f"build the layer for {target.runtime}, or attach it to a "
                        f"python{entry.name[6:]} function instead",
                    )
                )
    for nested in ("python", "site-packages"):
        if (python / nested).is_dir():
            problems.append(
                _problem(
                    "bad-layout",
                    f"{PYTHON_DIR}/{nested}/",
                    f"{PYTHON_DIR}/{nested}/ is not on sys.path: the packages inside it cannot be "
                    f"imported by their own names",
                    f"move the contents of {PYTHON_DIR}/{nested}/ up into {PYTHON_DIR}/",
                )
            )
    lib = tree.root / LIB_DIR
    if lib.is_dir():
        for entry in sorted(lib.iterdir()):
            if _is_python(entry):
                shown = f"{LIB_DIR}/{entry.name}" + ("/" if entry.is_dir() else "")
                problems.append(
                    _problem(
                        "bad-layout",
                        shown,
                        f"{shown} is Python code in {LIB_DIR}/, which is on LD_LIBRARY_PATH for shared "
                        f"libraries, not on sys.path",
                        f"install Python packages into {target.site_packages}/ or {PYTHON_DIR}/ "
                        f"(pip install --target {PYTHON_DIR}, not --prefix)",
                    )
                )
    return problems


def _is_python(entry: Path) -> bool:
    """Whether a directory entry is a module, a package, or a distribution's metadata."""
    if entry.is_dir():
        if entry.name.endswith((".dist-info", ".egg-info")) or entry.name == "site-packages":
            return True
        if _VERSION_DIR.fullmatch(entry.name):  # lib/python3.12/site-packages, as pip --prefix makes
            return True
        return any(entry.glob("*.py")) or any(extension_name(p.name) for p in entry.iterdir())
    return entry.suffix == ".py" or extension_name(entry.name) is not None


# --- foreign-binary, arch-mismatch, unreadable-binary -------------------------------------------


def check_foreign_binaries(tree: LayerTree, target: Target) -> list[Problem]:
    problems = []
    hint = (
        f"replace it with the Linux build: the manylinux wheel of its package (pip install --platform "
        f"manylinux2014_{target.arch.wheel_arch} --only-binary=:all:), or build with --backend docker"
    )
    for rel, kind in tree.binaries.items():
        if kind in _FORMAT_NAMES:
            problems.append(
                _problem(
                    "foreign-binary",
                    rel,
                    f"{rel} is a {_FORMAT_NAMES[kind]} binary; Lambda runs Linux and cannot load it",
                    hint,
                )
            )
        elif kind == "elf":
            facts = tree.elf(rel)
            if isinstance(facts, ElfFacts) and facts.osabi not in _LINUX_OSABIS:
                problems.append(
                    _problem(
                        "foreign-binary",
                        rel,
                        f"{rel} is an ELF file for {facts.osabi.removeprefix('ELFOSABI_')}, not Linux",
                        hint,
                    )
                )
    return problems


def check_unreadable(tree: LayerTree, target: Target) -> list[Problem]:
    problems = []
    for rel, kind in tree.binaries.items():
        facts = tree.elf(rel) if kind == "elf" else None
        if isinstance(facts, ElfReadError):
            problems.append(
                _problem(
                    "unreadable-binary",
                    rel,
                    f"{rel} starts like an ELF file but cannot be read: {facts.reason}",
                    "it is probably truncated or corrupt (an interrupted download or copy); "
                    "reinstall the package and rebuild the layer",
                )
            )
    return problems


def check_arch(tree: LayerTree, target: Target) -> list[Problem]:
    arches = {t.arch.elf_machine: t.arch.name for t in all_targets()}
    problems = []
    for rel, facts in tree.elves():
        if _fits(facts, target):
            continue
        other = arches.get(facts.machine)
        elsewhere = f", or deploy the function as {other}" if other and facts.elf_class == 64 else ""
        problems.append(
            _problem(
                "arch-mismatch",
                rel,
                f"{rel} is a {facts.elf_class}-bit ELF file for {facts.machine}; {target.runtime} "
                f"{target.arch.name} needs {target.arch.elf_class}-bit {target.arch.elf_machine}",
                f"install wheels for {target.arch.wheel_arch} "
                f"(pip install --platform manylinux2014_{target.arch.wheel_arch} --only-binary=:all:)"
                + elsewhere,
            )
        )
    return problems


# --- abi-mismatch -------------------------------------------------------------------------------


def check_abi(tree: LayerTree, target: Target) -> list[Problem]:
    problems = []
    wanted = f"cpython-{target.version.replace('.', '')}"
    loads = ", ".join(f"*{suffix}" for suffix in target.extension_suffixes)
    hint = (
        f"install the {target.python_tag} wheel (pip install --python-version {target.version} "
        f"--only-binary=:all:), or build the layer for {target.runtime}"
    )
    for rel in tree.files:
        if not rel.startswith(PYTHON_DIR + "/"):
            continue
        name = rel.rsplit("/", 1)[-1]
        ext = extension_name(name)
        kind = tree.binaries.get(rel)
        # A Mach-O or PE file is reported as foreign-binary; its name adds nothing.
        if ext is None or ext.interpreter is None or ext.platform is None or kind in _FORMAT_NAMES:
            continue
        if ext.interpreter == wanted and ext.platform == target.arch.multiarch:
            continue
        facts = tree.elf(rel) if kind == "elf" else None
        # Right Python, wrong CPU: the ELF header says so too, and arch-mismatch reports it.
        if (
            ext.interpreter == wanted
            and isinstance(facts, ElfFacts)
            and not _fits(facts, target)
            and ext.platform.endswith("-linux-gnu")
        ):
            continue
        problems.append(
            _problem(
                "abi-mismatch",
                rel,
                f"{rel} is built for {ext.interpreter} on {ext.platform}; {target.runtime} "
                f"{target.arch.name} only loads {loads}, so importing {ext.module} fails "
                f'with "No module named"',
                hint,
            )
        )
    for rel, facts in tree.elves():
        for needed in facts.needed:
            if _other_libpython(needed, target):
                problems.append(
                    _problem(
                        "abi-mismatch",
                        rel,
                        f"{rel} links {needed}, the library of another Python; {target.runtime} "
                        f"provides libpython{target.version}",
                        f"rebuild it against Python {target.version}, or use the {target.python_tag} wheel",
                    )
                )
    return problems


def _other_libpython(name: str, target: Target) -> bool:
    match = _LIBPYTHON.fullmatch(name)
    return match is not None and match["version"] != target.version


# --- glibc-too-new ------------------------------------------------------------------------------


def check_glibc(tree: LayerTree, target: Target) -> list[Problem]:
    problems = []
    for rel, facts in tree.elves():
        # A binary for another CPU never loads; arch-mismatch has said so.
        highest = facts.highest_glibc
        if not _fits(facts, target) or highest is None or highest <= target.glibc:
            continue
        version = "GLIBC_" + ".".join(map(str, highest))
        sources = [library for library, names in facts.version_needs if version in names]
        symbols = [f"{symbol}@{version}" for symbol in facts.highest_glibc_symbols]
        shown = ", ".join(symbols[:5]) + (f" and {len(symbols) - 5} more" if len(symbols) > 5 else "")
        package = _package(rel)
        docker = f"build with --backend docker so it is compiled against glibc {target.glibc_text}"
        hint = (
            f"pin an older release of {package} or use a wheel tagged manylinux_{target.glibc[0]}_"
            f"{target.glibc[1]} or lower (manylinux2014 is glibc 2.17), or {docker}"
            if package
            else f"take it from the {target.runtime} build image instead: {docker}"
        )
        problems.append(
            _problem(
                "glibc-too-new",
                rel,
                f"{rel} needs {version} (from {', '.join(sources)})"
                + (f" for {shown}" if shown else "")
                + f"; {target.describe()} has glibc {target.glibc_text}",
                hint,
            )
        )
    return problems


# --- missing-library ----------------------------------------------------------------------------


@cache
def _base_catalogue() -> dict[str, Any]:
    data = json.loads((DATA_DIR / "base-libraries.json").read_text())
    oses = data["operating_systems"]
    unknown = {t.os_id for t in all_targets()} - set(oses)
    if unknown:
        raise CatalogueError(f"base-libraries.json lacks {sorted(unknown)}")
    for os_id, row in oses.items():
        if not row.get("source"):
            raise CatalogueError(f"base-libraries.json: {os_id} does not say where its list comes from")
        names = row["libraries"]
        if len(set(names)) != len(names):
            raise CatalogueError(f"base-libraries.json: {os_id} lists a library twice")
        for required in ("libc.so.6", "{dynamic_loader}"):
            if required not in names:
                raise CatalogueError(f"base-libraries.json: {os_id} lacks {required}")
        for name in names:
            try:
                name.format(dynamic_loader="", version="")
            except (KeyError, IndexError) as err:
                raise CatalogueError(f"base-libraries.json: {os_id}: unknown placeholder in {name}") from err
    return data


def base_libraries(target: Target) -> frozenset[str]:
    """The sonames the target's runtime image provides."""
    names = _base_catalogue()["operating_systems"][target.os_id]["libraries"]
    loader, version = target.arch.dynamic_loader, target.version
    return frozenset(name.format(dynamic_loader=loader, version=version) for name in names)


@dataclass(frozen=True)
class _Search:
    found: str | None = None
    in_runtime: bool = False
    tried: tuple[str, ...] = ()
    wrong_arch: tuple[str, ...] = ()


class _Loader:
    """glibc's search for a DT_NEEDED name, played over the layer tree without running anything."""

    def __init__(self, tree: LayerTree, target: Target) -> None:
        self.tree = tree
        self.target = target
        self.base = base_libraries(target)

    def facts(self, rel: str) -> ElfFacts:
        facts = self.tree.elf(rel)
        assert isinstance(facts, ElfFacts), "only readable ELF files are ever loaded"
        return facts

    def search(self, name: str, chain: tuple[str, ...]) -> _Search:
        """Where `name` is found when chain[0] needs it; chain[1:] are the objects that loaded chain[0]."""
        tried: list[str] = []
        wrong: list[str] = []
        leaf = posixpath.basename(name)

        def look(directories: list[str]) -> str | None:
            for directory in directories:
                tried.append(directory)
                rel = self.tree.file_at(posixpath.join(directory, leaf))
                if rel is None:
                    continue
                facts = self.tree.elf(rel)
                # The loader skips a file of the wrong class or machine and keeps looking.
                if isinstance(facts, ElfFacts) and _fits(facts, self.target):
                    return rel
                wrong.append(rel)
            return None

        def result(found: str | None = None, in_runtime: bool = False) -> _Search:
            return _Search(found, in_runtime, tuple(dict.fromkeys(tried)), tuple(dict.fromkeys(wrong)))

        # A name with a slash is opened as a path, relative to the working directory.
        if "/" in name:
            return result(look([posixpath.dirname(posixpath.normpath(posixpath.join(TASK_ROOT, name)))]))
        needer = self.facts(chain[0])
        # Without a RUNPATH, the RPATHs of the needer and then of each object that loaded it are
        # searched; an object with a RUNPATH has its RPATH ignored (glibc's elf/dl-load.c).
        if not needer.runpath:
            for rel in chain:
                facts = self.facts(rel)
                if not facts.runpath and (found := look(self._expand(facts.rpath, rel))):
                    return result(found)
        if name in self.base:
            return result(in_runtime=True)
        if found := look([LAYER_LIBRARY_PATH]):
            return result(found)
        return result(look(self._expand(needer.runpath, chain[0])))

    @staticmethod
    def _expand(directories: tuple[str, ...], rel: str) -> list[str]:
        origin = posixpath.join(MOUNT, posixpath.dirname(rel))
        expanded = []
        for directory in directories:
            directory = directory.replace("${ORIGIN}", origin).replace("$ORIGIN", origin)
            expanded.append(posixpath.normpath(posixpath.join(TASK_ROOT, directory)))
        return expanded


def check_libraries(tree: LayerTree, target: Target) -> list[Problem]:
    loader = _Loader(tree, target)
    missing: dict[tuple[str, str], tuple[_Search, tuple[str, ...]]] = {}
    for start in _entry_points(tree, target):
        # What each loaded object answers to (its soname, the names it was asked for), as glibc
        # reuses an object already loaded instead of searching again.
        loaded: dict[str, str] = {}
        chains = {start: (start,)}
        queue = deque([start])
        while queue:
            rel = queue.popleft()
            facts = loader.facts(rel)
            if facts.soname:
                loaded.setdefault(facts.soname, rel)
            for name in facts.needed:
                if name in loaded or _other_libpython(name, target):
                    continue
                search = loader.search(name, chains[rel])
                if search.found is not None:
                    loaded[name] = search.found
                    if search.found not in chains:
                        chains[search.found] = (search.found, *chains[rel])
                        queue.append(search.found)
                elif not search.in_runtime:
                    missing.setdefault((rel, name), (search, chains[rel]))
    ordered = sorted(missing.items())
    return [_missing_problem(name, search, chain, target) for (_, name), (search, chain) in ordered]


def _entry_points(tree: LayerTree, target: Target) -> list[str]:
    """The files something outside the layer loads: every ELF no other ELF of the layer needs.

    Libraries auditwheel grafted into <package>.libs/ are only ever loaded as dependencies of
    the package's extensions, so they are no entry points even when their user is gone.
    """
    elves = {rel: facts for rel, facts in tree.elves() if _fits(facts, target)}
    needed = {name for facts in elves.values() for name in facts.needed}
    return sorted(
        rel
        for rel, facts in elves.items()
        if posixpath.basename(rel) not in needed
        and facts.soname not in needed
        and not any(part.endswith(".libs") for part in rel.split("/")[:-1])
    )


def _missing_problem(name: str, search: _Search, chain: tuple[str, ...], target: Target) -> Problem:
    rel = chain[0]
    # Whether a library is found can depend on what loaded its user (inherited RPATHs).
    loaded_by = f" (loaded by {' <- '.join(chain[1:])})" if len(chain) > 1 else ""
    message = (
        f"{rel}{loaded_by} needs {name}, which is neither in the layer nor in the {target.runtime} "
        f"runtime (searched {', '.join(search.tried)} and the runtime's libraries)"
    )
    if search.wrong_arch:
        shown = ", ".join(search.wrong_arch)
        message += (
            f"; {shown} has that name but is no {target.arch.elf_machine} ELF library the loader accepts"
        )
    if _GRAFTED.fullmatch(name):
        hint = (
            f"{name} is a library bundled with the wheel of {_package(rel) or 'this package'} and it "
            f"is gone; reinstall the package whole instead of copying parts of it"
        )
    else:
        hint = (
            f"add {name} for {target.arch.name} to the layer's {LIB_DIR}/ (on LD_LIBRARY_PATH), or use "
            f"a wheel that bundles it; --backend docker copies it from the {target.runtime} build image"
        )
    return _problem("missing-library", rel, message, hint)


# --- size-limit ---------------------------------------------------------------------------------


def check_size(tree: LayerTree, target: Target, zipped_bytes: int | None = None) -> list[Problem]:
    problems = []
    unzipped = tree.unzipped_bytes
    if unzipped > UNZIPPED_LIMIT:
        problems.append(
            _problem(
                "size-limit",
                ".",
                f"the layer unzips to {megabytes(unzipped)}, over Lambda's limit of "
                f"{megabytes(UNZIPPED_LIMIT)} ({UNZIPPED_LIMIT} bytes) for a function and all its layers",
                "leave out what the function does not import (tests, docs, extras, other platforms' "
                "binaries), strip debug symbols from shared libraries, or deploy a container image "
                "(up to 10 GB)",
            )
        )
    if zipped_bytes is not None:
        problems += check_zipped_size(zipped_bytes)
    return problems


def check_zipped_size(zipped_bytes: int) -> list[Problem]:
    if zipped_bytes <= ZIPPED_LIMIT:
        return []
    return [
        _problem(
            "size-limit",
            ".",
            f"the layer zip is {megabytes(zipped_bytes)}, over the {megabytes(ZIPPED_LIMIT)} limit "
            f"for a direct upload",
            "publish it from S3 (the direct-upload limit does not apply there)",
            warning=True,
        )
    ]


# Cheap, self-contained rules first; the loader walk comes last.
CHECKS: tuple[Check, ...] = (
    check_readable,
    check_links,
    check_layout,
    check_foreign_binaries,
    check_unreadable,
    check_arch,
    check_abi,
    check_glibc,
    check_libraries,
)
