"""validate = static audit + import check, over a layer directory or zip."""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import os
import shutil
import stat
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from builder.audit import audit_tree
from builder.audit.dependencies import check_dependencies
from builder.audit.rules import UNZIPPED_LIMIT
from builder.errors import UsageError
from builder.layout import PYTHON_DIR, apply_shadowing, top_level_modules
from builder.manifest import read_manifest
from builder.problems import Problem, Severity
from builder.report import ValidationReport
from builder.requirements import read_requirements
from builder.runtimes import Target
from builder.store import DEFAULT_OUT, MANIFEST, TREE_DIR
from builder.verify import ImportCheck, ImportCheckChoice, check_imports

# What Lambda's runtime also fails on, whatever the function's environment: the handler's module
# or one it imports is missing or cannot load, its code does not parse, or the function is not there.
HANDLER_LOAD_ERRORS = ("ModuleNotFoundError", "ImportError", "SyntaxError", "IndentationError", "TabError",
                       "AttributeError")  # fmt: skip


def _handler_problem(handler: str, where: str, error: str) -> Problem:
    if error.startswith(HANDLER_LOAD_ERRORS):
        return Problem(
            code="handler-not-found",
            path=handler,
            message=f"the handler {handler} cannot be loaded in {where}: {error}",
            hint="Handler is module.function: that module must import (see the other problems) and "
            "define that function",
        )
    # Anything else its module raised may need what Lambda gives it and this check does not: the
    # function's environment variables, its role, the network. Not a pass, not a verdict either.
    return Problem(
        code="handler-unproven",
        path=handler,
        message=f"importing the handler {handler} raised, in {where}: {error}; on Lambda it runs with the "
        "function's environment, which this check does not have",
        hint="if it reads configuration at import time, that is expected here; if not, fix it",
        severity="warning",
    )


def import_problems(check: ImportCheck, *, handler: str | None = None) -> list[Problem]:
    """The failures of an import check; handler is the function's Handler when it was checked."""
    entry = handler_entry(handler) if handler else None
    problems = [
        _handler_problem(str(handler), check.where, error)
        if module == entry
        else Problem(
            code="import-failed",
            path=module,
            message=f"import {module} failed in {check.where}: {error}",
            hint="a missing dependency or a binary the runtime cannot load; see the other problems",
        )
        for module, error in check.failures().items()
    ]
    if check.status == "failed" and not problems:
        problems.append(
            Problem(
                code="import-failed",
                path="",
                message=f"{check.where}: {check.reason}",
                hint="see the message",
            )
        )
    return problems


def handler_entry(handler: str) -> str | None:
    """The import check's entry for a Lambda Handler: "pkg/module.function" -> "pkg.module:function",
    split as Lambda's runtime interface client splits it; None when it names no function."""
    module, _, function = handler.rpartition(".")
    if not module or not function:
        return None
    return f"{module.replace('/', '.')}:{function}"


def validate_tree(
    root: Path,
    target: Target,
    *,
    zipped_bytes: int | None = None,
    extra: tuple[Problem, ...] = (),
    import_check: ImportCheckChoice = "auto",
    missing_dependency: Severity = "error",
    handler: str | None = None,
) -> ValidationReport:
    """missing_dependency: "warning" for a layer checked alone, whose distributions may rely
    on what the function or another layer provides; "error" where the tree is all there is
    (a function with its layers, or a layer built from a complete requirement set).
    handler: a function's Handler, imported and looked up after the top-level modules."""
    problems = [
        *extra,
        *audit_tree(root, target, zipped_bytes=zipped_bytes),
        *check_dependencies(root, target, severity=missing_dependency),
    ]
    modules = top_level_modules(root, target)
    if handler is not None:
        entry = handler_entry(handler)
        if entry is None:
            problems.append(
                Problem(
                    code="handler-not-found",
                    path=handler,
                    message=f"the handler {handler!r} names no function: Lambda expects module.function",
                    hint="set Handler to e.g. app.handler (the function handler in app.py)",
                )
            )
        else:
            modules.append(entry)
    if any(p.code == "escaping-link" for p in problems):
        # Importing through such a link would read whatever it names (a device, a host file).
        imports = ImportCheck(status="not-verified", where="", reason="not run: links lead outside the layer")
    else:
        imports = check_imports(root, target, modules, import_check=import_check)
    problems += import_problems(imports, handler=handler)
    return ValidationReport(
        target=target, problems=tuple(problems), imports=_without_unproven(imports, problems)
    )


def _without_unproven(imports: ImportCheck, problems: list[Problem]) -> ImportCheck:
    """The import check as the verdict reads it: a handler whose module raised for want of the
    function's environment is a warning (handler-unproven), not a failed import."""
    unproven = {handler_entry(p.path) for p in problems if p.code == "handler-unproven"}
    if not unproven:
        return imports
    modules = {module: error for module, error in imports.modules.items() if module not in unproven}
    failed = any(error is not None for error in modules.values())
    return dataclasses.replace(imports, modules=modules, status="failed" if failed else "passed")


@dataclass(frozen=True, kw_only=True)
class LayerSource:
    """What to validate: the unpacked tree, the zip's size when it came zipped, and what
    unpacking it found wrong (then the tree holds nothing, and the verdict is invalid)."""

    tree: Path
    zipped_bytes: int | None = None
    problems: tuple[Problem, ...] = ()


@contextmanager
def layer_tree(path: Path) -> Iterator[LayerSource]:
    """The directory to audit for a layer given as a directory, a zip, or a build output."""
    if path.is_file() and zipfile.is_zipfile(path):
        with tempfile.TemporaryDirectory(prefix="lambdakit-validate-") as scratch:
            problems = extract_layer_zip(path, Path(scratch))
            yield LayerSource(tree=Path(scratch), zipped_bytes=path.stat().st_size, problems=tuple(problems))
        return
    if not path.is_dir():
        raise UsageError(
            f"{path} is neither a layer directory nor a zip file",
            hint="pass a directory with python/, a layer .zip, or a build output (build/layers/NAME)",
        )
    # A build output (layer.json + tree/) or a layer's source folder (layers/<name>/).
    built = path / TREE_DIR
    if (path / MANIFEST).is_file() and built.is_dir():
        zips = sorted(path.glob("*.zip"))
        yield LayerSource(tree=built, zipped_bytes=zips[0].stat().st_size if zips else None)
        return
    if (path / "requirements.txt").is_file() and not (path / PYTHON_DIR).exists():
        # layers/NAME of a project: its build output is that project's build/layers/NAME,
        # wherever validate runs from, and only while its requirements are what was built.
        source = path.resolve()
        output = source.parent.parent / DEFAULT_OUT / source.name
        recorded = read_manifest(output / MANIFEST)
        if recorded is None:
            raise UsageError(
                f"{path} is a layer's source folder and it has not been built yet (no {output})",
                hint=f"run: lambdakit build-layer {source.name}",
            )
        current = hashlib.sha256(read_requirements(path / "requirements.txt").key_text.encode()).hexdigest()
        if recorded.requirements_sha256 != current:
            raise UsageError(
                f"stale: {output} was built from other requirements than {path / 'requirements.txt'} "
                "holds now",
                hint=f"rebuild: lambdakit build-layer {source.name}",
            )
        with layer_tree(output) as inner:
            yield inner
        return
    yield LayerSource(tree=path)


def extract_layer_zip(path: Path, dest: Path) -> list[Problem]:
    """Unpack a layer zip as Lambda would, refusing what would harm this machine or mislead the audit.

    Sizes are read from the central directory first, so a zip bomb is refused without
    writing it; what is written is counted too, in case the directory lies. Nothing is
    written outside dest; symbolic links stay links (Lambda keeps them) if they stay inside.
    Returns the problems found; with any of them, dest is left empty.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            problems = archive_problems(members)
            if problems:
                return problems
            _extract(archive, members, dest)
    except _ArchiveError as err:
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir()
        return [_bad_archive(err.member, str(err))]
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as err:
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir()
        return [_bad_archive("", f"the zip cannot be read: {err}")]
    except OSError as err:
        # What the zip asks for cannot exist on a file system: a file and a folder of one name,
        # a name too long. (A full disk is this machine's problem: it propagates.)
        if err.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
            raise
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir()
        member = Path(err.filename).relative_to(dest).as_posix() if err.filename else ""
        return [_bad_archive(member, f"the zip cannot be unpacked: {err.strerror}")]
    if not any(dest.iterdir()):
        return [
            Problem(
                code="bad-layout",
                path=".",
                message="the layer holds no files: nothing for the runtime to load",
                hint="build it again; a layer zip holds python/...",
            )
        ]
    return []


class _ArchiveError(Exception):
    def __init__(self, member: str, message: str) -> None:
        super().__init__(message)
        self.member = member


def _bad_archive(member: str, message: str) -> Problem:
    return Problem(
        code="bad-archive",
        path=member or ".",
        message=message,
        hint="rebuild the zip with lambdakit build-layer (deterministic, checked) or a plain zip tool",
    )


def archive_problems(members: list[zipfile.ZipInfo]) -> list[Problem]:
    problems = []
    seen: set[str] = set()
    declared = 0
    for info in members:
        name = info.filename
        if name.startswith("/") or ".." in Path(name).parts:
            problems.append(_bad_archive(name, f"{name!r} would be written outside the layer's folder"))
        if name in seen:
            problems.append(
                _bad_archive(name, f"{name!r} is in the zip twice: extractors disagree on which copy wins")
            )
        seen.add(name)
        if info.flag_bits & 0x1:
            problems.append(_bad_archive(name, f"{name!r} is encrypted: Lambda cannot unpack it"))
        declared += info.file_size
    if declared > UNZIPPED_LIMIT:
        problems.append(
            Problem(
                code="size-limit",
                path=".",
                message=f"the zip declares {declared} bytes unpacked, over Lambda's {UNZIPPED_LIMIT}; "
                "it was not unpacked",
                hint="leave out what the function does not import, or deploy a container image",
            )
        )
    return problems


def _extract(archive: zipfile.ZipFile, members: list[zipfile.ZipInfo], dest: Path) -> None:
    """Unpack in two passes: folders and files first, while the archive has made no link that a
    path could run through; then its links, each checked where it leads once all of them exist
    (a chain of links that are harmless one by one can still lead out)."""
    root = dest.resolve()
    written = 0
    links = [info for info in members if stat.S_ISLNK(info.external_attr >> 16)]
    for info in members:
        if info in links:
            continue
        target = dest / info.filename
        if info.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        with archive.open(info) as source, target.open("wb") as out:
            while chunk := source.read(1 << 20):
                written += len(chunk)
                if written > UNZIPPED_LIMIT:
                    raise _ArchiveError(info.filename, "the zip unpacks to more than its directory says")
                out.write(chunk)
        if (info.external_attr >> 16) & 0o111:
            target.chmod(0o755)
    for info in links:
        target = dest / info.filename
        link = archive.read(info).decode(errors="replace")
        if os.path.isabs(link) or not Path(os.path.realpath(target.parent)).is_relative_to(root):
            raise _ArchiveError(info.filename, f"{info.filename!r} links to {link!r}, outside the layer")
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            target.symlink_to(link)
        except FileExistsError as err:
            raise _ArchiveError(info.filename, f"{info.filename!r} is a link and a file or folder") from err
    for info in links:
        if not Path(os.path.realpath(dest / info.filename)).is_relative_to(root):
            link = archive.read(info).decode(errors="replace")
            raise _ArchiveError(info.filename, f"{info.filename!r} links to {link!r}, outside the layer")


def _link_or_copy(source: str, dest: str) -> None:
    # Hard links make the view cheap; a later source replaces an earlier one.
    if os.path.lexists(dest):
        os.unlink(dest)
    try:
        os.link(source, dest)
    except OSError:
        shutil.copy2(source, dest)


@contextmanager
def function_tree(
    package: Path, layers: Sequence[Path], *, layer_sources: Sequence[str] = ()
) -> Iterator[LayerSource]:
    """A layer-shaped view of a function package and the layers it uses.

    Lambda extracts the layers into /opt in order, a later one's files replacing an
    earlier one's, and puts the package (/var/task) on sys.path before /opt/python:
    a module or package the function ships hides the layers' copy of it whole.
    layer_sources: what to call each layer in the problems found laying it (validate --deployed's
    "layer NAME:VERSION"); by default they name no source.
    """
    if not package.is_dir():
        raise UsageError(
            f"{package} is not a function package directory", hint="pass the built function's folder"
        )
    with tempfile.TemporaryDirectory(prefix="lambdakit-function-") as scratch:
        view = Path(scratch)
        problems: list[Problem] = []
        # Links are copied as links (the audit judges where they lead; following one to
        # /dev/zero would copy for ever), and devices, FIFOs and sockets not at all.
        names = list(layer_sources) or [""] * len(layers)
        for layer, name in zip(layers, names, strict=True):
            found: list[Problem] = []
            with layer_tree(layer) as source:
                try:
                    shutil.copytree(
                        source.tree,
                        view,
                        dirs_exist_ok=True,
                        symlinks=True,
                        copy_function=_link_or_copy,
                        ignore=_special_files(found, source.tree, prefix=""),
                    )
                except shutil.Error as err:
                    found.append(_clash(layer, err, view))
                found += source.problems
            # Links that each stay inside their own layer can lead out once layers meet: one
            # is removed before anything is copied through it.
            found += _unlink_escaping_links(view)
            problems += [dataclasses.replace(p, source=name) for p in found]
        hidden: set[Path] = set()
        if (view / PYTHON_DIR).is_dir():
            hidden = apply_shadowing(package, view / PYTHON_DIR)
        special = _special_files(problems, package, prefix=f"{PYTHON_DIR}/")
        shutil.copytree(
            package,
            view / PYTHON_DIR,
            dirs_exist_ok=True,
            symlinks=True,
            copy_function=_link_or_copy,
            ignore=lambda directory, names: (
                special(directory, names) | {n for n in names if Path(directory) / n in hidden}
            ),
        )
        problems += _unlink_escaping_links(view)
        yield LayerSource(tree=view, problems=tuple(problems))


def _clash(layer: Path, err: shutil.Error, view: Path) -> Problem:
    """A layer whose files cannot lie over the earlier layers': a file where a folder is, or the reverse."""
    first = err.args[0][0] if err.args and err.args[0] else ("", "", str(err))
    said = str(first[-1]).replace(f"{view}/", "")
    return Problem(
        code="bad-layout",
        path=".",
        message=f"{layer.name} cannot be laid over the layers before it: {said}",
        hint="a module is a file in one layer and a package in another: keep one of them",
    )


def _unlink_escaping_links(view: Path) -> list[Problem]:
    """Remove each link in the view that leads outside it, as a problem."""
    root = view.resolve()
    problems = []
    for directory, folders, files in os.walk(view):
        for name in [*folders, *files]:
            path = Path(directory, name)
            if path.is_symlink() and not Path(os.path.realpath(path)).is_relative_to(root):
                rel = path.relative_to(view).as_posix()
                problems.append(
                    Problem(
                        code="escaping-link",
                        path=rel,
                        message=f"{rel} links to {os.readlink(path)!r}: with the layers together, "
                        "that is outside /opt",
                        hint="a layer must not point a link at another layer's folders",
                    )
                )
                path.unlink()
    return problems


def _special_files(
    problems: list[Problem], root: Path, *, prefix: str
) -> Callable[[str, list[str]], set[str]]:
    """A copytree ignore that leaves out what is neither a file, a folder nor a link, as a problem."""

    def ignore(directory: str, names: list[str]) -> set[str]:
        skipped = set()
        for name in names:
            mode = os.lstat(os.path.join(directory, name)).st_mode
            if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISLNK(mode)):
                skipped.add(name)
                rel = prefix + Path(directory, name).relative_to(root).as_posix()
                problems.append(
                    Problem(
                        code="bad-layout",
                        path=rel,
                        message=f"{rel} is a device, FIFO or socket: a Lambda package holds files only",
                        hint="remove it from the package",
                    )
                )
        return skipped

    return ignore


def validate_layer(
    path: Path, target: Target, *, import_check: ImportCheckChoice = "auto"
) -> ValidationReport:
    """A layer (directory, zip, build output or source folder) checked alone."""
    with layer_tree(path) as source:
        return validate_tree(
            source.tree,
            target,
            zipped_bytes=source.zipped_bytes,
            extra=source.problems,
            import_check=import_check,
            # Alone, a layer may lean on the function or another layer: the function's check judges that.
            missing_dependency="warning",
        )


def validate_function_package(
    package: Path,
    layers: Sequence[Path],
    target: Target,
    *,
    import_check: ImportCheckChoice = "auto",
    handler: str | None = None,
    extra: tuple[Problem, ...] = (),
) -> ValidationReport:
    """A function package with the layers it uses, in order, as Lambda assembles them."""
    with function_tree(package, layers) as source:
        return validate_tree(
            source.tree,
            target,
            extra=(*extra, *source.problems),
            import_check=import_check,
            handler=handler,
        )
