"""The audit's rules: each takes a layer tree and a Target and returns the problems it finds.

The tree reads every binary at most once and the loader resolves what each one needs; the rules
only judge the facts they hand out.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from builder.audit.elf import BinaryFormat, ElfFacts
from builder.audit.loader import Loader, Lookup, entry_points, fits
from builder.audit.tree import LayerTree
from builder.layout import BIN_DIR, LIB_DIR, OPT_DIR, PYTHON_DIR, extension_name
from builder.problems import Problem, Severity
from builder.runtimes import Target, all_targets
from builder.units import MB, megabytes

# Lambda's errors quote the byte counts: "Unzipped size must be smaller than 262144000 bytes", and for a
# direct upload "Request must be smaller than 69905067 bytes", which is 50 MiB once base64-encoded.
UNZIPPED_LIMIT = 250 * MB
ZIPPED_LIMIT = 50 * MB

_LINUX_OSABIS = ("ELFOSABI_SYSV", "ELFOSABI_LINUX")
_FORMAT_NAMES: dict[BinaryFormat, str] = {"macho": "Mach-O (macOS)", "pe": "PE (Windows)"}
_LIBPYTHON = re.compile(r"libpython(?P<version>\d+\.\d+)[a-z]*\.so(\.[\d.]+)?")
_VERSION_DIR = re.compile(r"python\d+\.\d+")
# auditwheel renames the libraries it grafts into a wheel: libpq-9b38f5e3.so.5.17.
_GRAFTED = re.compile(r".+-[0-9a-f]{8}\.so(\.\d+)*")

Check = Callable[[LayerTree, Target], list[Problem]]


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
                    f"{shown} sits at the layer root: Lambda unpacks it to {OPT_DIR}/{entry.name}, "
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
    return [
        _problem(
            "unreadable-binary",
            rel,
            f"{rel} starts like an ELF file but cannot be read: {err.reason}",
            "it is probably truncated or corrupt (an interrupted download or copy); "
            "reinstall the package and rebuild the layer",
        )
        for rel, err in tree.unparseable()
    ]


def check_arch(tree: LayerTree, target: Target) -> list[Problem]:
    arches = {t.arch.elf_machine: t.arch.name for t in all_targets()}
    problems = []
    for rel, facts in tree.elves():
        if fits(facts, target):
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
            and not fits(facts, target)
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
        if not fits(facts, target) or highest is None or highest <= target.glibc:
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


def check_libraries(tree: LayerTree, target: Target) -> list[Problem]:
    loader = Loader(tree, target)
    missing: dict[tuple[str, str], Lookup] = {}
    for start in entry_points(tree, target):
        for lookup in loader.walk(start):
            search = lookup.search
            # Another Python's libpython is abi-mismatch: said once, there.
            if search.found is None and not search.in_runtime and not _other_libpython(lookup.name, target):
                missing.setdefault((lookup.chain[0], lookup.name), lookup)
    return [_missing_problem(missing[key], target) for key in sorted(missing)]


def _missing_problem(lookup: Lookup, target: Target) -> Problem:
    name, search, (rel, *loaders) = lookup.name, lookup.search, lookup.chain
    # Whether a library is found can depend on what loaded its user (inherited RPATHs).
    loaded_by = f" (loaded by {' <- '.join(loaders)})" if loaders else ""
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
