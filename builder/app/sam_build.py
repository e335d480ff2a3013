"""`validate` on what `sam build` wrote, for any SAM project.

The build output's own template.yaml says where each artifact is (its CodeUri and
ContentUri are folders next to it) and, with its Globals, the runtime and
architecture of each function. Each Python function is validated with the
template's layers it uses, in order, and its Handler looked up; each layer alone,
for every runtime and architecture of the functions using it (or, used by none,
the first it declares compatible).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from builder import runtimes
from builder.app.template import AppTemplate, FunctionSpec, LayerSpec, read_template
from builder.errors import UsageError
from builder.matrix import rank
from builder.problems import Problem, errors
from builder.report import ValidationReport, Verdict
from builder.runtimes import Target
from builder.validate import validate_function_package, validate_layer
from builder.verify import ImportCheck, ImportCheckChoice

SCHEMA = 1
BUILT_TEMPLATE = "template.yaml"
# Where `sam build` writes by default, from the project root. (Not builder.app.plan's constant:
# that module brings the Docker SDK, which `lambdakit validate` must not load at start-up.)
SAM_BUILD_DIR = Path(".aws-sam") / "build"

ArtifactKind = Literal["function", "layer"]


@dataclass(frozen=True, kw_only=True)
class ArtifactReport:
    """One function or layer of the build, for one runtime and architecture.

    report is None when there was nothing to validate for: then problems say why it cannot
    work (a runtime lambdakit has no facts for: invalid) or note says why it was not checked
    (not verified, never a pass)."""

    kind: ArtifactKind
    logical_id: str
    path: Path
    runtime: str
    arch: str
    report: ValidationReport | None = None
    problems: tuple[Problem, ...] = ()
    note: str = ""

    @property
    def verdict(self) -> Verdict:
        if self.report is not None:
            return self.report.verdict
        return "invalid" if errors(list(self.problems)) else "not-verified"

    def to_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "logical_id": self.logical_id,
            "path": str(self.path),
            "runtime": self.runtime,
            "arch": self.arch,
            "verdict": self.verdict,
            "problems": [p.to_dict() for p in self.problems],
            "note": self.note,
            "report": self.report.to_dict() if self.report is not None else None,
        }


@dataclass(frozen=True, kw_only=True)
class SamBuildReport:
    template: Path
    artifacts: tuple[ArtifactReport, ...]

    @property
    def verdict(self) -> Verdict:
        return max((a.verdict for a in self.artifacts), key=rank, default="valid")

    @property
    def ok(self) -> bool:
        return self.verdict == "valid"

    def to_dict(self) -> dict[str, object]:
        return {
            "schema": SCHEMA,
            "ok": self.ok,
            "verdict": self.verdict,
            "template": str(self.template),
            "artifacts": [a.to_dict() for a in self.artifacts],
        }


def find_sam_build(path: Path) -> Path | None:
    """The `sam build` output PATH stands for: PATH itself when it holds the built template.yaml,
    or PATH/.aws-sam/build for a project root that was built. None when PATH is neither."""
    if (path / SAM_BUILD_DIR / BUILT_TEMPLATE).is_file():
        return path / SAM_BUILD_DIR
    if (path / BUILT_TEMPLATE).is_file():
        return path
    return None


def validate_sam_build(build_dir: Path, *, import_check: ImportCheckChoice = "auto") -> SamBuildReport:
    """Every function and layer of a `sam build` output, each for its runtime and architecture."""
    template = build_dir / BUILT_TEMPLATE
    app = read_template(template)
    _require_build_output(app)
    functions = [_function_artifact(app, function, import_check) for function in app.functions]
    layers = [artifact for layer in app.layers for artifact in _layer_artifacts(app, layer, import_check)]
    return SamBuildReport(template=template, artifacts=(*functions, *layers))


def _require_build_output(app: AppTemplate) -> None:
    # `sam build` writes each function to a folder named after it and points CodeUri there;
    # a project's own template points at its sources, which hold no dependencies yet.
    packages = [f for f in app.functions if f.package_type == "Zip"]
    if packages and not any(Path(f.code_uri).name == f.logical_id for f in packages):
        raise UsageError(
            f"{app.path} is a SAM template, but not `sam build`'s output: its functions' CodeUri are "
            "source folders, and there is no .aws-sam/build next to it",
            hint="run sam build, then: lambdakit validate .aws-sam/build (or the project root)",
        )


def _folder(app: AppTemplate, uri: str) -> Path:
    return app.path.parent / uri


def _target(runtime: str, arch: str, *, package_type: str = "Zip") -> Target | Problem | str:
    """What to validate for: the target, or why there is none, as a problem (a Python runtime
    or an architecture lambdakit has no facts for) or a note (nothing lambdakit validates)."""
    if package_type != "Zip":
        return f"not validated: a {package_type} package (lambdakit validates zip packages)"
    if not runtime.startswith("python"):
        return f"not validated: its runtime {runtime!r} is not a Python runtime"
    try:
        return runtimes.target(runtime, arch)
    except ValueError as err:
        return Problem(
            code="unknown-runtime",
            path=f"{runtime} {arch}",
            message=f"{runtime} {arch}: {err}",
            hint="set Runtime and Architectures (on the function or in Globals: Function:) to those, "
            "and run sam build again",
        )


def _missing_folder(kind: ArtifactKind, logical_id: str, folder: Path) -> Problem:
    return Problem(
        code="missing-folder",
        path=str(folder),
        message=f"{kind} {logical_id}: {folder} does not exist or is not a folder",
        hint="run sam build again; the build output holds a folder for every function and layer",
    )


def _not_run(problems: tuple[Problem, ...], target: Target, reason: str) -> ValidationReport:
    return ValidationReport(
        target=target,
        problems=problems,
        imports=ImportCheck(status="not-verified", where="", reason=f"not run: {reason}"),
    )


def _artifact(
    kind: ArtifactKind,
    logical_id: str,
    path: Path,
    runtime: str,
    arch: str,
    validate: Callable[[Target], ValidationReport],
    *,
    package_type: str = "Zip",
) -> ArtifactReport:
    """The artifact validated for its target, or why it could not be."""
    unchecked = ArtifactReport(kind=kind, logical_id=logical_id, path=path, runtime=runtime, arch=arch)
    found = _target(runtime, arch, package_type=package_type)
    if isinstance(found, Problem):
        return replace(unchecked, problems=(found,))
    if isinstance(found, str):
        return replace(unchecked, note=found)
    return replace(unchecked, report=validate(found))


def _function_artifact(
    app: AppTemplate, function: FunctionSpec, import_check: ImportCheckChoice
) -> ArtifactReport:
    package = _folder(app, function.code_uri)
    layers = [(layer_id, _folder(app, app.layer(layer_id).content_uri)) for layer_id in function.layers]
    # A missing layer is a problem of the function too: what it would provide is not there.
    missing = tuple(
        _missing_folder("layer", layer_id, path) for layer_id, path in layers if not path.exists()
    )

    def validate(target: Target) -> ValidationReport:
        if not package.is_dir():
            problems = (_missing_folder("function", function.logical_id, package), *missing)
            return _not_run(problems, target, "the function's folder is missing")
        present = [path for _, path in layers if path.exists()]
        return validate_function_package(
            package, present, target, import_check=import_check, handler=function.handler, extra=missing
        )

    return _artifact("function", function.logical_id, package, function.runtime, function.arch, validate,
                     package_type=function.package_type)  # fmt: skip


def _layer_artifacts(
    app: AppTemplate, layer: LayerSpec, import_check: ImportCheckChoice
) -> list[ArtifactReport]:
    path = _folder(app, layer.content_uri)
    users = [f for f in app.functions if layer.logical_id in f.layers]
    targets = list(dict.fromkeys((f.runtime, f.arch, f.package_type) for f in users))
    if not targets and layer.compatible_runtimes:
        arch = layer.compatible_architectures[0] if layer.compatible_architectures else runtimes.DEFAULT_ARCH
        targets = [(layer.compatible_runtimes[0], arch, "Zip")]
    if not targets:
        note = "not validated: no runtime known (no function uses it, and it declares no CompatibleRuntimes)"
        return [ArtifactReport(kind="layer", logical_id=layer.logical_id, path=path, runtime="", arch="",
                               note=note)]  # fmt: skip

    def validate(target: Target) -> ValidationReport:
        if not path.exists():
            missing = (_missing_folder("layer", layer.logical_id, path),)
            return _not_run(missing, target, "the layer's folder is missing")
        return validate_layer(path, target, import_check=import_check)

    return [
        _artifact("layer", layer.logical_id, path, runtime, arch, validate, package_type=package_type)
        for runtime, arch, package_type in targets
    ]
