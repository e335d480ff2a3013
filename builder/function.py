"""package-function: a plain function's code and its requirements, resolved for one runtime and
architecture, validated as Lambda loads a function, written as one zip for create-function or
update-function-code.

The requirements are built as a layer (build.py: resolve, slim, audit, import check), cached per
function and target under build/functions/.deps; the contents of its python/ are what a function
package carries. The code is laid over them, the whole is validated as a function (its root on
sys.path, as /var/task), the handler imported, and only then is the zip moved to its place with
one rename: a failed or interrupted run leaves a previous zip there as it was.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import shutil
import stat
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from builder.audit.rules import check_zipped_size
from builder.build import BackendName, BuildOptions, BuildResult, build_layer
from builder.errors import InvalidLayer, UsageError
from builder.layout import PYTHON_DIR, apply_shadowing, import_entries, namespace_portion
from builder.matrix import target_out
from builder.package import write_zip
from builder.progress import Progress
from builder.report import ValidationReport, Verdict
from builder.runtimes import Target
from builder.validate import function_tree, handler_entry, validate_tree
from builder.verify import ImportCheckChoice

DEFAULT_OUT_DIR = Path("build/functions")
# The requirements' layer builds, one folder per target: unchanged requirements are not resolved again.
DEPENDENCY_CACHE = DEFAULT_OUT_DIR / ".deps"

# What of the function's folder never goes into the zip, and why (package-function --help lists it).
LEFT_OUT_ANYWHERE = {
    "__pycache__": "bytecode of this machine's Python; Lambda compiles its own",
    "*.pyc": "the same",
}
LEFT_OUT_AT_TOP = {
    ".venv": "this machine's environment: binaries for this host, not the target",
    "venv": "the same",
    ".git": "version control",
    ".aws-sam": "SAM's build output",
    "tests": "the function's tests, which Lambda never runs",
}

# Lambda's handler setting: MODULE.FUNCTION, the module dotted or a path with '/' (the runtime
# turns 'pkg/mod' into 'pkg.mod'), as the runtime interface client splits it.
HANDLER = re.compile(r"(?P<module>[A-Za-z_]\w*(?:[./][A-Za-z_]\w*)*)\.(?P<function>[A-Za-z_]\w*)")


@dataclass(frozen=True, kw_only=True)
class Handler:
    spec: str  # as given: handler.handler, pkg/app.main
    module: str  # dotted: pkg.app
    function: str


def parse_handler(spec: str) -> Handler:
    match = HANDLER.fullmatch(spec)
    if match is None:
        raise UsageError(
            f"{spec!r} is not a Lambda handler",
            hint="give MODULE.FUNCTION as in the function's configuration, e.g. handler.handler for the "
            "function handler() of handler.py, or app.main.lambda_handler for app/main.py",
        )
    return Handler(spec=spec, module=match["module"].replace("/", "."), function=match["function"])


@dataclass(frozen=True, kw_only=True)
class HandlerOutcome:
    spec: str
    status: Literal["passed", "failed", "not-verified"]
    where: str  # the checker that imported it
    error: str | None  # why it failed, or why it could not be checked

    def to_dict(self) -> dict[str, str | None]:
        return {"spec": self.spec, "status": self.status, "where": self.where, "error": self.error}


@dataclass(frozen=True, kw_only=True)
class FunctionPackageOptions:
    code: Path  # the function's folder
    target: Target
    requirements: Path | None = None  # None: code/requirements.txt when it lists something
    out: Path | None = None  # None: build/functions/<code's name>-<runtime>-<arch>.zip
    handler: str | None = None  # MODULE.FUNCTION: imported and looked up as the runtime does
    backend: BackendName = "auto"
    import_check: ImportCheckChoice = "auto"
    allow_unverified: bool = False  # write the zip even when no import check could run here
    cache: Path = DEPENDENCY_CACHE


@dataclass(frozen=True, kw_only=True)
class FunctionPackageResult:
    zip_path: Path  # where the zip is, or would be when not written
    written: bool  # False: not verified, and not allowed to be written unverified
    sha256: str
    zipped_bytes: int
    unzipped_bytes: int
    files: int
    report: ValidationReport  # the handler's check included
    handler: Handler | None
    requirements: Path | None
    dependencies: Literal["built", "up-to-date", "none"]
    packages: dict[str, str]  # distribution -> version
    backend_reason: str
    left_out: tuple[str, ...]  # code paths not packaged (LEFT_OUT_*), relative to the folder
    shadowed: tuple[str, ...]  # names the code provides that replace a dependency's copy
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def verdict(self) -> Verdict:
        return self.report.verdict

    def handler_outcome(self) -> HandlerOutcome | None:
        """The handler's check as the report has it: passed, failed (with why) or not-verified."""
        if self.handler is None:
            return None
        status: Literal["passed", "failed", "not-verified"]
        failed = [p.message for p in self.report.problems if p.code == "handler-not-found"]
        imports = self.report.imports
        entry = handler_entry(self.handler.spec)
        if failed:
            status, error = "failed", failed[0]
        elif entry in imports.modules and imports.modules[entry] is None:
            status, error = "passed", None
        else:
            status, error = "not-verified", imports.reason
        return HandlerOutcome(spec=self.handler.spec, status=status, where=imports.where, error=error)


def default_out(code: Path, target: Target) -> Path:
    return DEFAULT_OUT_DIR / f"{code.resolve().name or 'function'}-{target.runtime}-{target.arch.name}.zip"


def package_function(options: FunctionPackageOptions, progress: Progress) -> FunctionPackageResult:
    code = _function_folder(options.code)
    handler = parse_handler(options.handler) if options.handler is not None else None
    requirements = _requirements_file(options.requirements, code)
    out = (options.out or default_out(code, options.target)).resolve()
    if out.is_dir():
        raise UsageError(f"{out} is a folder", hint="pass --out FILE.zip, the zip's own path")
    target = options.target
    timings: dict[str, float] = {}

    @contextmanager
    def step(label: str, detail: str) -> Iterator[None]:
        progress.step(label, detail)
        start = time.perf_counter()
        yield
        timings[label] = round(time.perf_counter() - start, 3)

    dependencies: Literal["built", "up-to-date", "none"] = "none"
    packages: dict[str, str] = {}
    backend_reason = ""
    deps_tree: Path | None = None
    if requirements is not None:
        with step("requirements", f"{requirements}, built as a layer for {target.describe()}"):
            built = _build_requirements(code, requirements, options, progress)
        dependencies, packages, backend_reason = built.status, built.manifest.packages, built.backend_reason
        deps_tree = built.tree / PYTHON_DIR

    out.parent.mkdir(parents=True, exist_ok=True)
    # Beside --out, so that the finished zip takes its place with one rename on one file system.
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".staging", dir=out.parent))
    try:
        with step("code", f"{code}"):
            own_output = {out, staging, options.cache.resolve(), DEFAULT_OUT_DIR.resolve()}
            left_out = _copy_code(code, staging / "code", own_output)
            package = staging / "package"
            shadowed = _lay_code_over(staging / "code", deps_tree, package)
        with step("validate", "as a function: static audit, imports" + (", handler" if handler else "")):
            report = _validate(package, target, handler, options.import_check)
        with step("zip", out.name):
            packaged = write_zip(package, staging / out.name)
        report = dataclasses.replace(
            report, problems=report.problems + tuple(check_zipped_size(packaged.zipped_bytes))
        )
        if report.verdict == "invalid":
            raise InvalidLayer(
                f"the package of {code} is invalid for {target.describe()}; no zip was written",
                hint="fix the problems listed; a zip already at the output path is unchanged",
                step="validate",
                report=report.to_dict(),
            )
        written = report.verdict == "valid" or options.allow_unverified
        if written:
            with step("write", str(out)):
                os.replace(packaged.zip_path, out)  # readers see the previous zip or this one
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return FunctionPackageResult(
        zip_path=out,
        written=written,
        sha256=packaged.zip_sha256,
        zipped_bytes=packaged.zipped_bytes,
        unzipped_bytes=packaged.unzipped_bytes,
        files=len(packaged.files),
        report=report,
        handler=handler,
        requirements=requirements,
        dependencies=dependencies,
        packages=packages,
        backend_reason=backend_reason,
        left_out=left_out,
        shadowed=shadowed,
        timings=timings,
    )


def _function_folder(code: Path) -> Path:
    if not code.exists():
        raise UsageError(
            f"{code} does not exist",
            hint="pass the folder that holds the function's code (its handler module)",
        )
    if not code.is_dir():
        raise UsageError(
            f"{code} is a file, not a folder",
            hint="pass the folder that holds it: every file of the folder goes into the zip",
        )
    return code.resolve()


def _requirements_file(given: Path | None, code: Path) -> Path | None:
    """The requirements to resolve: the file given, else the folder's requirements.txt when it lists
    anything (a function without dependencies often carries an empty one)."""
    if given is not None:
        return given
    default = code / "requirements.txt"
    if not default.is_file():
        return None
    lines = (line.strip() for line in default.read_text().splitlines())
    return default if any(line and not line.startswith("#") for line in lines) else None


def _build_requirements(
    code: Path, requirements: Path, options: FunctionPackageOptions, progress: Progress
) -> BuildResult:
    # One cached layer per function folder and target: the folder's name (which need not be a
    # layer name) made one, and a hash of its path, so that two `handler/` folders stay apart.
    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", code.name).strip("-_")[:40] or "function"
    name = f"{stem}-{hashlib.sha256(str(code).encode()).hexdigest()[:8]}"
    build = BuildOptions(
        name=name,
        requirements=requirements,
        target=options.target,
        out=target_out(options.cache, options.target),
        backend=options.backend,
        import_check=options.import_check,
    )
    try:
        return build_layer(build, progress)
    except InvalidLayer as err:
        raise InvalidLayer(
            f"the requirements {requirements} cannot work on {options.target.describe()}; no zip was written",
            hint="fix the problems listed (another release, or another package)",
            step="requirements",
            report=err.report,
        ) from err


def _left_out(path: Path, *, at_top: bool) -> bool:
    name = path.name
    if name == "__pycache__" or (name.endswith(".pyc") and not path.is_dir()):
        return True
    return at_top and name in LEFT_OUT_AT_TOP


def _copy_code(code: Path, dest: Path, own_output: set[Path]) -> tuple[str, ...]:
    """Copy the function's folder to dest without what LEFT_OUT_* names, nor lambdakit's own output
    when it lies inside (`cd fn && lambdakit package-function .` writes to fn/build/functions/).
    Returns what was left out. A link or a special file is refused: a zip carries files."""
    left_out: list[str] = []
    unpackable: list[str] = []

    def ignore(directory: str, names: list[str]) -> set[str]:
        here = Path(directory)
        skipped = set()
        for name in names:
            path = here / name
            rel = path.relative_to(code).as_posix()
            mode = path.lstat().st_mode
            if path in own_output:
                skipped.add(name)
            elif _left_out(path, at_top=here == code):
                skipped.add(name)
                left_out.append(rel + "/" if stat.S_ISDIR(mode) else rel)
            elif not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                skipped.add(name)
                unpackable.append(rel)
        return skipped

    shutil.copytree(code, dest, ignore=ignore, symlinks=True)
    if unpackable:
        raise UsageError(
            f"{code} holds what a zip cannot carry as it is: {', '.join(sorted(unpackable))} "
            "(a symbolic link, a device, a FIFO or a socket)",
            hint="replace each link with the file it names, or move it out of the folder",
        )
    # Folders that held nothing but lambdakit's output (fn/build/functions/) are no code either.
    for output in own_output:
        if code in output.parents:
            for folder in (dest / output.relative_to(code)).parents:
                if folder == dest or not folder.is_dir() or any(folder.iterdir()):
                    break
                folder.rmdir()
    if not any(path.is_file() for path in dest.rglob("*")):
        raise UsageError(
            f"{code} holds no file to package",
            hint="pass the folder with the function's code (its handler module, e.g. handler.py)",
        )
    return tuple(sorted(left_out))


def _lay_code_over(code: Path, deps: Path | None, package: Path) -> tuple[str, ...]:
    """The package: the dependencies, then the code over them. Both land in /var/task, so a module
    or package of the code replaces the dependency's whole copy, as validate --function has the
    function's copy hide a layer's (a file-by-file merge would mix two releases). Returns the
    names so replaced: only namespace portions on both sides combine."""
    if deps is None:
        shutil.copytree(code, package)
        return ()
    shutil.copytree(deps, package)
    found = import_entries(package)
    shadowed = tuple(
        key
        for key, entries in import_entries(code).items()
        if key in found and not (namespace_portion(entries) and namespace_portion(found[key]))
    )
    # What the code provides wins in the one folder, even a namespace portion facing a regular
    # package of the dependencies (which apply_shadowing reports rather than removes).
    apply_shadowing(code, package)
    shutil.copytree(code, package, dirs_exist_ok=True)
    return shadowed


def _validate(
    package: Path, target: Target, handler: Handler | None, import_check: ImportCheckChoice
) -> ValidationReport:
    """As `validate --function` does: the package is /var/task; with a handler, its module is
    imported and its function looked up in the same checker (handler-not-found otherwise)."""
    with function_tree(package, ()) as source:
        return validate_tree(
            source.tree,
            target,
            extra=source.problems,
            import_check=import_check,
            handler=handler.spec if handler else None,
        )
