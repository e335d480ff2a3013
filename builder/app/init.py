"""`lambdakit init`: wire lambdakit into an existing SAM project, the user's template kept intact.

Planned, then written. plan_init reads the project and decides every file and every template
line; anything it would have to overwrite, and every other mistake, is a UsageError before a
single byte is written. apply_init writes the files, then the template, each atomically. Run
again when everything is in place, it writes nothing.

The template is never re-emitted. ruamel.yaml's round-trip parser says where each mapping and
list starts (line and column) and whether it is written in flow style; the new lines are
inserted there as text, so every line the user wrote (comments, quoting, key order, `!Ref`,
`!GetAtt`, `!Sub`, `!If` ...) stays byte for byte. Its emitter would not: it re-indents an
`!If` list inside a list, as this repository's own template.yaml shows. The edited text is read
back with read_template, and must wire the layer, before it replaces the template.
"""

from __future__ import annotations

import difflib
import os
import re
import stat
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq, TaggedScalar
from ruamel.yaml.error import YAMLError

from builder.app.template import AppTemplate, FunctionSpec, read_template
from builder.errors import UsageError
from builder.recipes import REQUIREMENTS_FILE, RequirementsSource, project_file, requirements_for
from builder.runtimes import Target
from builder.store import check_layer_name

SCHEMA = 1
DEFAULT_LAYER = "psycopg2"
TEMPLATE_NAMES = ("template.yaml", "template.yml")  # the ones `sam build` looks for
MAKEFILE = "Makefile"
LAYER_TYPE = "AWS::Serverless::LayerVersion"
MAKEFILE_BUILD = "makefile"
# CloudFormation's rule for a logical id.
LOGICAL_ID = re.compile(r"[A-Za-z0-9]{1,255}")
# A requirements line that includes another file, relative to the one that names it.
INCLUDE = re.compile(r"\s*(-r|-c|--requirement|--constraint)\b")

FileState = Literal["new", "same", "differs"]


@dataclass(frozen=True, kw_only=True)
class InitOptions:
    template: Path
    layer: str | None = None  # None: the built-in psycopg2, unless -r/-p give the requirements
    logical_id: str | None = None  # None: the template's layer on layers/NAME, else NameLayer
    requirements: Path | None = None
    packages: tuple[str, ...] = ()
    functions: tuple[str, ...] = ()  # logical ids; none: every Python function of the template
    function_makefile: bool = False
    edit_template: bool = False


@dataclass(frozen=True, kw_only=True)
class ProjectFile:
    path: Path
    text: str
    purpose: str  # what the user is told it is
    state: FileState  # "same": already there with exactly this text, nothing to write

    @property
    def exists(self) -> bool:
        return self.state == "same"


@dataclass(frozen=True, kw_only=True)
class TemplateAddition:
    where: str  # the mapping or list it goes in: "Resources.ApiFunction.Properties"
    text: str  # the YAML to add, indented relative to that place
    line: int | None  # 1-based line of the unedited template it goes before (or on, for a flow list)
    reason: str = ""  # why it cannot be placed without rewriting a line of the user's (line None)
    into_line: bool = False  # an item added into the flow list ([...]) on that line

    def to_dict(self) -> dict[str, Any]:
        return {
            "where": self.where,
            "text": self.text,
            "line": self.line,
            "reason": self.reason,
            "into_line": self.into_line,
        }


@dataclass(frozen=True)
class _Edit:
    """Lines inserted before line `at` (0-based), or, for a flow list, line `at` rewritten."""

    at: int
    lines: tuple[str, ...]
    replaces: bool = False


@dataclass(frozen=True, kw_only=True)
class InitPlan:
    project: Path
    template: Path
    layer: str
    logical_id: str
    target: Target
    functions: tuple[str, ...]  # the functions that use the layer
    files: tuple[ProjectFile, ...]
    additions: tuple[TemplateAddition, ...]
    original_template: str  # as Python reads text: every line ending a "\n"
    newline: str  # the template's own line ending, which its edited text is written with
    edited_template: str | None  # the new template text, with --edit-template and something to add
    notes: tuple[str, ...]

    @property
    def already_set_up(self) -> bool:
        return all(f.exists for f in self.files) and not self.additions


@dataclass(frozen=True, kw_only=True)
class InitResult:
    plan: InitPlan
    written: tuple[Path, ...]
    template_edited: bool

    def to_dict(self) -> dict[str, Any]:
        plan = self.plan
        return {
            "schema": SCHEMA,
            "ok": True,
            "already_set_up": plan.already_set_up,
            "project": str(plan.project),
            "template": str(plan.template),
            "layer": plan.layer,
            "logical_id": plan.logical_id,
            "runtime": plan.target.runtime,
            "arch": plan.target.arch.name,
            "functions": list(plan.functions),
            "files": [
                {
                    "path": str(f.path),
                    "purpose": f.purpose,
                    "status": "written" if f.path in self.written else "unchanged",
                }
                for f in plan.files
            ],
            "template_additions": [addition.to_dict() for addition in plan.additions],
            "template_edited": self.template_edited,
            "notes": list(plan.notes),
        }


def find_template(folder: Path) -> Path:
    """The SAM template `sam build` would read in this folder."""
    return next((folder / n for n in TEMPLATE_NAMES if (folder / n).is_file()), folder / TEMPLATE_NAMES[0])


def layer_logical_id(name: str) -> str:
    """The logical id init gives a layer: psycopg2 -> Psycopg2Layer, my-deps -> MyDepsLayer."""
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[-_]", name) if part) + "Layer"


def init_project(options: InitOptions) -> InitResult:
    return apply_init(plan_init(options))


def plan_init(options: InitOptions) -> InitPlan:
    """Every file and template line init would write, checked; nothing is written."""
    name = _layer_name(options)
    template = options.template
    project = template.parent  # SAM resolves ContentUri and CodeUri from the template's folder
    text, document = _load(template)
    app = read_template(template)
    chosen = _chosen_functions(app, options.functions)
    target = _one_target(chosen)
    logical_id = _layer_id(options.logical_id, name, app, document["Resources"])
    source = requirements_for(
        name, requirements=options.requirements, packages=options.packages, project=project
    )
    notes: list[str] = []
    files = _layer_files(project, name, logical_id, source, target, notes)
    metadata_for: list[FunctionSpec] = []
    if options.function_makefile:
        function_files, metadata_for = _function_builds(project, document, chosen, target, notes)
        files += function_files
    _refuse_overwrites(files)
    to_wire = [f for f in chosen if logical_id not in f.layers]
    editor = _TemplateEditor(text, document)
    if any(layer.logical_id == logical_id for layer in app.layers):
        _check_layer_build(document, logical_id, editor)
    else:
        editor.add_layer(
            logical_id,
            name,
            _layer_properties(document, chosen, target),
            before=[f.logical_id for f in chosen],
        )
    for function in to_wire:
        editor.wire_layer(function.logical_id, logical_id)
    for function in metadata_for:
        editor.add_build_method(function.logical_id)
    edited = None
    if options.edit_template and editor.additions:
        made = [logical_id, *(f.logical_id for f in metadata_for)]
        edited = _edited_template(editor, template, logical_id, name, [f.logical_id for f in chosen], made)
    if not all(f.exists for f in files):
        notes.append(f"lambdakit keeps its builds in {project / 'build'}/: leave it out of version control")
    return InitPlan(
        project=project,
        template=template,
        layer=name,
        logical_id=logical_id,
        target=target,
        functions=tuple(f.logical_id for f in chosen),
        files=tuple(files),
        additions=tuple(editor.additions),
        original_template=text,
        newline=_newline(template, editing=options.edit_template),
        edited_template=edited,
        notes=tuple(notes),
    )


def apply_init(plan: InitPlan) -> InitResult:
    """Write what the plan says: the new files (never over an existing one), then the template."""
    written = []
    for file in plan.files:
        if not file.exists:
            _write_new(file.path, file.text)
            written.append(file.path)
    if plan.edited_template is not None:
        target = plan.template.resolve()  # a linked template is edited where it lives
        if target.read_text() != plan.original_template:
            raise UsageError(
                f"{plan.template} changed while init ran: it was not edited",
                hint="run lambdakit init again",
            )
        _replace(target, plan.edited_template.replace("\n", plan.newline))
    return InitResult(plan=plan, written=tuple(written), template_edited=plan.edited_template is not None)


# --- what the project has ------------------------------------------------------------------


def _layer_name(options: InitOptions) -> str:
    if options.layer is None and (options.requirements is not None or options.packages):
        # Else the layer made of these would be called psycopg2.
        raise UsageError(
            "-r and -p need a layer name", hint="name it: lambdakit init --layer NAME -p SPEC ..."
        )
    name = options.layer or DEFAULT_LAYER
    check_layer_name(name)
    return name


def _yaml() -> YAML:
    return YAML(typ="rt")


def _newline(template: Path, *, editing: bool) -> str:
    """The template's line ending, CRLF (Windows) or LF. One that mixes them cannot be edited
    without changing lines of the user's."""
    raw = template.read_bytes()
    crlf = raw.count(b"\r\n")
    if editing and crlf and crlf != raw.count(b"\n"):
        raise UsageError(
            f"{template} mixes line endings: init cannot add lines without changing some of yours",
            hint="run init without --edit-template and add the lines it prints by hand",
        )
    return "\r\n" if crlf else "\n"


def _load(template: Path) -> tuple[str, CommentedMap]:
    if not template.is_file():
        raise UsageError(
            f"no SAM template at {template}",
            hint="run lambdakit init in the project's folder (where template.yaml is), or pass --template",
        )
    try:
        text = template.read_text()
        document = _yaml().load(text)
    except (UnicodeDecodeError, YAMLError) as err:
        raise UsageError(
            f"{template} is not a YAML file: {err}", hint="pass the SAM template with --template"
        ) from err
    resources = document.get("Resources") if isinstance(document, CommentedMap) else None
    if not isinstance(resources, CommentedMap):
        raise UsageError(
            f"{template} is not a SAM template: it has no Resources mapping",
            hint="pass the SAM template with --template",
        )
    # What read_template takes for granted, checked here so that a mistake is named, not a crash.
    defaults = document.get("Globals", {})
    shapes: dict[str, object] = {"Globals": defaults}
    if isinstance(defaults, Mapping):
        shapes["Globals.Function"] = defaults.get("Function", {})
    for name, resource in resources.items():
        shapes[f"Resources.{name}"] = resource
        if isinstance(resource, Mapping):
            shapes[f"Resources.{name}.Properties"] = resource.get("Properties", {})
    wrong = [where for where, value in shapes.items() if not isinstance(value, Mapping)]
    if wrong:
        raise UsageError(
            f"{template} is not a SAM template: {', '.join(wrong)} must be a mapping (Key: value lines)",
            hint="fix the template; `sam validate` says more",
        )
    return text, document


def _chosen_functions(app: AppTemplate, names: tuple[str, ...]) -> list[FunctionSpec]:
    python = [f for f in app.functions if f.package_type == "Zip" and f.runtime.startswith("python")]
    if not names:
        if not python:
            raise UsageError(
                f"{app.path} has no Python function (a Zip function with a python3.x Runtime)",
                hint="lambdakit builds Python layers: add a Python function first",
            )
        return python
    known = {f.logical_id: f for f in app.functions}
    chosen = []
    for name in dict.fromkeys(names):
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            raise UsageError(
                f"{app.path} has no function {name!r}",
                hint=f"did you mean {close[0]}?" if close else f"its functions: {', '.join(known) or 'none'}",
            )
        if known[name] not in python:
            raise UsageError(
                f"function {name} is not a Python function (Runtime {known[name].runtime})",
                hint="lambdakit layers are for python3.x Zip functions",
            )
        chosen.append(known[name])
    return chosen


def _one_target(functions: list[FunctionSpec]) -> Target:
    targets = {f.target for f in functions}
    if len(targets) > 1:
        described = "; ".join(f"{f.logical_id}: {f.runtime} {f.arch}" for f in functions)
        raise UsageError(
            f"the functions run on different runtimes or architectures ({described}), "
            "and a layer is built for one",
            hint="choose the functions of one target with --function, and run init once per target "
            "with another --layer NAME",
        )
    return targets.pop()


def _layer_id(given: str | None, name: str, app: AppTemplate, resources: CommentedMap) -> str:
    """--logical-id; else the template's layer already on layers/NAME; else NameLayer. Whichever,
    a resource of that id must be that layer or nothing."""
    content_uri = str(PurePosixPath("layers", name))
    on_folder = [
        layer.logical_id for layer in app.layers if os.path.normpath(layer.content_uri) == content_uri
    ]
    logical_id = given or (on_folder[0] if on_folder else layer_logical_id(name))
    if LOGICAL_ID.fullmatch(logical_id) is None:
        raise UsageError(
            f"{logical_id!r} is not a CloudFormation logical id",
            hint="use letters and digits only (at most 255), e.g. --logical-id DepsLayer",
        )
    if logical_id in resources and resources[logical_id].get("Type") != LAYER_TYPE:
        raise UsageError(
            f"{app.path}: {logical_id} is already a resource of type {resources[logical_id].get('Type')}",
            hint="pass another --logical-id for the layer",
        )
    on_id = [layer for layer in app.layers if layer.logical_id == logical_id]
    if on_id and os.path.normpath(on_id[0].content_uri) != content_uri:
        raise UsageError(
            f"{app.path}: layer {logical_id} is built from {on_id[0].content_uri}, not {content_uri}",
            hint="pass another --logical-id for this layer",
        )
    if on_folder and on_folder[0] != logical_id:
        raise UsageError(
            f"{app.path}: {content_uri} is already the layer {on_folder[0]}",
            hint=f"leave --logical-id out, or pass --logical-id {on_folder[0]}",
        )
    return logical_id


def _check_layer_build(document: CommentedMap, logical_id: str, editor: _TemplateEditor) -> None:
    """The template's own layer is built by its Makefile: told so when it says nothing, refused when
    it names another build method."""
    method = _build_method(document, logical_id)
    if method is None:
        editor.add_build_method(logical_id)
    elif method != MAKEFILE_BUILD:
        raise UsageError(
            f"layer {logical_id} is built with BuildMethod {method}: init would have to change it",
            hint=f"set its Metadata BuildMethod to {MAKEFILE_BUILD} yourself, or pass another --logical-id",
        )


def _resource(document: CommentedMap, logical_id: str) -> CommentedMap:
    resource: CommentedMap = document["Resources"][logical_id]
    return resource


def _build_method(document: CommentedMap, logical_id: str) -> object:
    metadata = _resource(document, logical_id).get("Metadata")
    return metadata.get("BuildMethod") if isinstance(metadata, Mapping) else None


# --- the files ------------------------------------------------------------------------------


def _state(path: Path, text: str) -> FileState:
    if path.is_file():
        return "same" if path.read_bytes() == text.encode() else "differs"
    if path.exists() or path.is_symlink() or any(p.exists() and not p.is_dir() for p in path.parents):
        return "differs"  # a folder, a dangling link, or a file where a folder must be
    return "new"


def _planned(path: Path, text: str, purpose: str) -> ProjectFile:
    return ProjectFile(path=path, text=text, purpose=purpose, state=_state(path, text))


def _layer_files(
    project: Path, name: str, logical_id: str, source: RequirementsSource, target: Target, notes: list[str]
) -> list[ProjectFile]:
    requirements = project_file(project, name)
    files = []
    if source.origin == "project":
        # The project's own: build-layer prefers it to a built-in recipe, and so does init.
        files.append(_planned(requirements, requirements.read_text(), "requirements: the project's own"))
    else:
        files.append(
            _planned(requirements, _requirements_text(source), f"requirements: {source.description}")
        )
    makefile = _layer_makefile(name, logical_id, target)
    files.append(
        _planned(requirements.with_name(MAKEFILE), makefile, f"`sam build` runs it for {logical_id}")
    )
    return files


def _requirements_text(source: RequirementsSource) -> str:
    if source.path is None:
        return source.packages_text
    text = source.path.read_text()
    if source.origin == "file" and any(INCLUDE.match(line) for line in text.splitlines()):
        raise UsageError(
            f"{source.path} includes other files (-r/-c), which are found from its own folder, "
            "not from the layer's",
            hint="pass a requirements file without includes (e.g. a lock file made with `uv pip compile`)",
        )
    return text


def _layer_makefile(name: str, logical_id: str, target: Target) -> str:
    return f"""\
# Written by `lambdakit init`. Called by `sam build` ({logical_id}, Metadata: BuildMethod: makefile) as
#   make --makefile layers/{name}/Makefile build-{logical_id}   with ARTIFACTS_DIR set.
# lambdakit resolves layers/{name}/requirements.txt for the target runtime and architecture,
# audits and import-checks the layer, then copies it (python/...) into ARTIFACTS_DIR. It runs
# from the project's folder, where it keeps its builds (build/).
# SAM passes neither the runtime nor the architecture to make: RUNTIME and ARCH are the
# template's functions' ones; set them when those change (ARCH=arm64 sam build).

LAMBDAKIT ?= lambdakit
RUNTIME ?= {target.runtime}
ARCH ?= {target.arch.name}
ROOT := $(abspath $(dir $(abspath $(lastword $(MAKEFILE_LIST))))../..)

.PHONY: build-{logical_id}
build-{logical_id}:
\tcd "$(ROOT)" && $(LAMBDAKIT) build-layer {name} --runtime $(RUNTIME) --arch $(ARCH) \\
\t\t--export "$(ARTIFACTS_DIR)"
"""


def _function_builds(
    project: Path, document: CommentedMap, chosen: list[FunctionSpec], target: Target, notes: list[str]
) -> tuple[list[ProjectFile], list[FunctionSpec]]:
    """The Makefiles of the chosen functions' code folders, and the functions that need
    `BuildMethod: makefile`. A function that already builds another way is left as it is."""
    folders: dict[Path, list[FunctionSpec]] = {}
    for function in chosen:
        method = _build_method(document, function.logical_id)
        if method not in (None, MAKEFILE_BUILD):
            notes.append(f"{function.logical_id} builds with BuildMethod {method}: left as it is")
            continue
        folders.setdefault(_code_folder(project, function), []).append(function)
    files, metadata_for = [], []
    for folder, functions in folders.items():
        text = _function_makefile(project, folder, functions, target)
        path = folder / MAKEFILE
        has_method = [f for f in functions if _build_method(document, f.logical_id) == MAKEFILE_BUILD]
        if len(has_method) == len(functions) and _state(path, text) == "differs":
            notes.append(f"{_ids(functions)} build with their own {folder / MAKEFILE}: left as it is")
            continue
        files.append(_planned(path, text, f"`sam build` runs it for {_ids(functions)}"))
        metadata_for += [f for f in functions if f not in has_method]
    return files, metadata_for


def _ids(functions: list[FunctionSpec]) -> str:
    return ", ".join(f.logical_id for f in functions)


def _code_folder(project: Path, function: FunctionSpec) -> Path:
    code_uri = function.code_uri
    relative = PurePosixPath(os.path.normpath(code_uri))
    problem = ""
    if "://" in code_uri or code_uri.startswith("{"):
        problem = "is not a folder of the project"
    elif relative.is_absolute() or relative.parts[:1] == ("..",):
        problem = "is outside the project's folder"
    elif relative == PurePosixPath("."):
        problem = "is the project's folder itself: its Makefile would copy the whole project into it"
    elif any(c.isspace() for c in code_uri):
        problem = "holds a space, which make cannot handle in a file name"
    elif not (project / relative).is_dir():
        problem = "does not exist"
    if problem:
        raise UsageError(
            f"the CodeUri of {function.logical_id} ({code_uri}) {problem}",
            hint="give the function a folder of its own in the project (CodeUri: src/), "
            "or leave out --function-makefile",
        )
    return project / relative


def _function_makefile(project: Path, folder: Path, functions: list[FunctionSpec], target: Target) -> str:
    code = PurePosixPath(os.path.relpath(folder, project))
    up = os.path.relpath(project, folder)
    targets = " ".join(f"build-{f.logical_id}" for f in functions)
    deps = "".join(f"build-{f.logical_id}: DEPS := {_deps_layer(f)}\n" for f in functions)
    return f"""\
# Written by `lambdakit init`. Called by `sam build` (Metadata: BuildMethod: makefile) as
#   make --makefile {code}/Makefile build-<LogicalId>   with ARTIFACTS_DIR set.
# lambdakit resolves the function's requirements.txt (when it has one) for the target runtime
# and architecture, checks it and copies the packages into ARTIFACTS_DIR; then the code is
# copied next to them. lambdakit runs from the project's folder, where it keeps its builds.
# SAM passes neither the runtime nor the architecture to make: RUNTIME and ARCH are the
# template's functions' ones; set them when those change (ARCH=arm64 sam build).

LAMBDAKIT ?= lambdakit
RUNTIME ?= {target.runtime}
ARCH ?= {target.arch.name}
HERE := $(dir $(abspath $(lastword $(MAKEFILE_LIST))))
ROOT := $(abspath $(HERE){up})
# The function's code: everything here but this Makefile (make's wildcard leaves out dot files).
CODE := $(filter-out $(HERE)Makefile $(HERE)__pycache__,$(wildcard $(HERE)*))

{deps}
.PHONY: {targets}
{targets}:
\t$(if $(wildcard $(HERE){REQUIREMENTS_FILE}),cd "$(ROOT)" && $(LAMBDAKIT) build-layer $(DEPS) \\
\t\t-r {code}/{REQUIREMENTS_FILE} --runtime $(RUNTIME) --arch $(ARCH) --export-function "$(ARTIFACTS_DIR)")
\tcp -R $(CODE) "$(ARTIFACTS_DIR)/"
"""


def _deps_layer(function: FunctionSpec) -> str:
    """The name lambdakit builds a function's requirements under."""
    name = f"{function.logical_id.lower()}-deps"
    check_layer_name(name)
    return name


def _refuse_overwrites(files: list[ProjectFile]) -> None:
    differ = [f.path for f in files if f.state == "differs"]
    if differ:
        raise UsageError(
            f"{', '.join(map(str, differ))} already exist{'s' if len(differ) == 1 else ''} with other "
            "content: init never overwrites, and wrote nothing",
            hint="move it away and run init again, or choose another --layer NAME",
        )


# --- the template ---------------------------------------------------------------------------


def _property(document: CommentedMap, function_id: str, key: str) -> object:
    """A function's property as written, on the function or else in Globals."""
    properties = _resource(document, function_id).get("Properties")
    if isinstance(properties, Mapping) and key in properties:
        return properties[key]
    defaults = document.get("Globals")
    function_defaults = defaults.get("Function") if isinstance(defaults, Mapping) else None
    return function_defaults.get(key) if isinstance(function_defaults, Mapping) else None


def _reference(raw: object) -> str | None:
    """`!Ref Name` (or {Ref: Name}) as written in the template, else None."""
    if isinstance(raw, TaggedScalar) and str(raw.tag) == "!Ref":
        name = raw.value
    elif isinstance(raw, Mapping) and list(raw) == ["Ref"]:
        name = raw["Ref"]
    else:
        return None
    return f"!Ref {name}" if isinstance(name, str) and LOGICAL_ID.fullmatch(name) else None


def _layer_properties(
    document: CommentedMap, functions: list[FunctionSpec], target: Target
) -> tuple[str, str]:
    """CompatibleRuntimes' and CompatibleArchitectures' item: as the functions name their runtime and
    architecture when they all do it alike (`!Ref Architecture` follows the parameter), else the value."""
    written = []
    for key, value in (("Runtime", target.runtime), ("Architectures", target.arch.name)):
        raws = [_property(document, f.logical_id, key) for f in functions]
        if key == "Architectures":
            raws = [raw[0] if isinstance(raw, CommentedSeq) and raw else None for raw in raws]
        references = {_reference(raw) for raw in raws}
        reference = references.pop() if len(references) == 1 else None
        written.append(reference or value)
    return written[0], written[1]


def _indent_of(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _closing_bracket(line: str, start: int) -> int | None:
    """The index of the "]" closing the flow list opened at line[start], when it is on this line."""
    depth, quote = 0, ""
    for index in range(start, len(line)):
        char = line[index]
        if quote:
            quote = "" if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
            if depth == 0:
                return index if char == "]" else None
    return None


class _TemplateEditor:
    """The additions to a template, each placed at a line of the text as the user wrote it."""

    def __init__(self, text: str, document: CommentedMap) -> None:
        self.lines = text.splitlines(keepends=True)
        self.document = document
        self.resources: CommentedMap = document["Resources"]
        self.indent = self._indent()
        self.additions: list[TemplateAddition] = []
        self.edits: list[_Edit] = []

    def _indent(self) -> int:
        """The template's indentation step, from its first block-style resource."""
        for resource in self.resources.values():
            step = resource.lc.col - self.resources.lc.col
            if not resource.fa.flow_style() and step > 0:
                return int(step)
        return 2

    def add_layer(
        self, logical_id: str, name: str, compatible: tuple[str, str], *, before: list[str]
    ) -> None:
        step, twice = " " * self.indent, " " * 2 * self.indent
        runtime, arch = compatible
        body = [
            f"{logical_id}:",
            f"{step}Type: {LAYER_TYPE}",
            f"{step}Properties:",
            f"{twice}ContentUri: {PurePosixPath('layers', name)}",
            f"{twice}CompatibleRuntimes: [{runtime}]",
            f"{twice}CompatibleArchitectures: [{arch}]",
            f"{step}Metadata:",
            f"{twice}BuildMethod: {MAKEFILE_BUILD}",
        ]
        if self.resources.fa.flow_style():
            self._unplaced("Resources", body, "is written in flow style ({...})")
            return
        # Before the first function that uses it, above the comment lines that belong to that one.
        first = min(before, key=lambda function_id: self.resources.lc.key(function_id)[0])
        at = self.resources.lc.key(first)[0]
        top = self.document.lc.key("Resources")[0]
        while at - 1 > top and self.lines[at - 1].lstrip().startswith("#"):
            at -= 1
        blank = ("",) if not self.lines[at - 1].strip() else ()  # as far from the next as from the last
        self._insert(at, int(self.resources.lc.col), "Resources", body, after=blank)

    def wire_layer(self, function_id: str, layer_id: str) -> None:
        resource = self._resource(function_id)
        where, reference = f"Resources.{function_id}", f"!Ref {layer_id}"
        properties = resource.get("Properties")  # a mapping, or absent: _load checked
        if properties is None:
            self._add_key(resource, where, ["Properties:", f"{' ' * self.indent}Layers: [{reference}]"])
        elif "Layers" not in properties:
            self._add_key(properties, f"{where}.Properties", [f"Layers: [{reference}]"])
        else:
            self._append(properties, f"{where}.Properties.Layers", reference)

    def add_build_method(self, logical_id: str) -> None:
        resource = self._resource(logical_id)
        where = f"Resources.{logical_id}"
        metadata = resource.get("Metadata")
        if "Metadata" not in resource:
            self._add_key(resource, where, ["Metadata:", f"{' ' * self.indent}BuildMethod: {MAKEFILE_BUILD}"])
        elif isinstance(metadata, CommentedMap):
            self._add_key(metadata, f"{where}.Metadata", [f"BuildMethod: {MAKEFILE_BUILD}"])
        else:
            self._unplaced(f"{where}.Metadata", [f"BuildMethod: {MAKEFILE_BUILD}"], "is not a mapping")

    def text(self) -> str:
        """The template with every addition in place."""
        lines = list(self.lines)
        if lines and not lines[-1].endswith("\n") and any(e.at == len(lines) for e in self.edits):
            lines[-1] += "\n"
        # From the bottom up, so that each edit's line number still holds; additions at one line
        # keep the order they were made in.
        for edit in reversed(sorted(self.edits, key=lambda e: e.at)):
            if edit.replaces:
                lines[edit.at] = edit.lines[0]
            else:
                lines[edit.at : edit.at] = [f"{line}\n" for line in edit.lines]
        return "".join(lines)

    def _resource(self, logical_id: str) -> CommentedMap:
        resource: CommentedMap = self.resources[logical_id]
        return resource

    def _add_key(self, mapping: CommentedMap, where: str, body: list[str]) -> None:
        """A key added after the last line of a block mapping, at its keys' column."""
        if mapping.fa.flow_style():
            self._unplaced(where, body, "is written in flow style ({...})")
            return
        col = int(mapping.lc.col)
        self._insert(self._end(int(mapping.lc.line), col), col, where, body)

    def _append(self, properties: CommentedMap, where: str, reference: str) -> None:
        layers = properties["Layers"]
        if not isinstance(layers, CommentedSeq):
            self._unplaced(where, [f"- {reference}"], "is not a list")
        elif layers.fa.flow_style():
            line_no, col = properties.lc.value("Layers")
            line = self.lines[line_no]
            close = _closing_bracket(line, col)
            if close is None:
                self._unplaced(where, [reference], "is a flow list ([...]) over several lines")
                return
            separator = ", " if line[col + 1 : close].strip() else ""
            last = len(line[:close].rstrip())  # the user's spacing before "]" stays
            rewritten = line[:last] + separator + reference + line[last:]
            self.edits.append(_Edit(at=line_no, lines=(rewritten,), replaces=True))
            self.additions.append(
                TemplateAddition(where=where, text=reference, line=line_no + 1, into_line=True)
            )
        else:
            line_no, item_col = layers.lc.item(0)
            before_item = self.lines[line_no][:item_col].rstrip()
            if not before_item.endswith("-"):
                self._unplaced(where, [f"- {reference}"], "is laid out in a way init does not follow")
                return
            dash = len(before_item) - 1
            self._insert(self._end(line_no, dash, sequence=True), dash, where, [f"- {reference}"])

    def _end(self, start: int, col: int, *, sequence: bool = False) -> int:
        """The line after the block whose first entry is at `start`, its keys (or dashes) at `col`:
        the block goes on while lines are indented more, or as much (another key, another item).
        Comment lines indented as much belong to it; blank lines after it do not."""
        last = start
        for index in range(start + 1, len(self.lines)):
            stripped = self.lines[index].strip()
            if not stripped:
                continue
            indent = _indent_of(self.lines[index])
            if stripped.startswith("#"):
                last = index if indent >= col else last
                continue
            if indent < col or (sequence and indent == col and not stripped.startswith("-")):
                break
            last = index
        return last + 1

    def _insert(self, at: int, col: int, where: str, body: list[str], *, after: tuple[str, ...] = ()) -> None:
        lines = tuple(f"{' ' * col}{line}" for line in body) + after
        self.edits.append(_Edit(at=at, lines=lines))
        self.additions.append(TemplateAddition(where=where, text="\n".join(body), line=at + 1))

    def _unplaced(self, where: str, body: list[str], reason: str) -> None:
        self.additions.append(TemplateAddition(where=where, text="\n".join(body), line=None, reason=reason))


def _edited_template(
    editor: _TemplateEditor,
    template: Path,
    logical_id: str,
    name: str,
    functions: list[str],
    made: list[str],
) -> str:
    """The template with init's lines added, proven by read_template to wire the layer."""
    unplaced = [a for a in editor.additions if a.line is None]
    if unplaced:
        reasons = "; ".join(f"{a.where} {a.reason}" for a in unplaced)
        raise UsageError(
            f"{template} cannot be edited without rewriting lines of yours: {reasons}",
            hint="run init without --edit-template: it prints the lines to add by hand",
        )
    text = editor.text()
    with tempfile.TemporaryDirectory(prefix="lambdakit-init-") as folder:
        copy = Path(folder) / template.name
        copy.write_text(text)
        try:
            app = read_template(copy)
            document = _yaml().load(text)
        except (UsageError, YAMLError) as err:
            raise _not_edited(template, str(err)) from err
    layer = [layer for layer in app.layers if layer.logical_id == logical_id]
    if not layer or os.path.normpath(layer[0].content_uri) != str(PurePosixPath("layers", name)):
        raise _not_edited(template, f"it has no layer {logical_id} on layers/{name}")
    unwired = [
        f.logical_id for f in app.functions if f.logical_id in functions and logical_id not in f.layers
    ]
    if unwired:
        raise _not_edited(template, f"{', '.join(unwired)} would not use {logical_id}")
    unmade = [resource for resource in made if _build_method(document, resource) != MAKEFILE_BUILD]
    if unmade:
        raise _not_edited(template, f"{', '.join(unmade)} would not be built with a Makefile")
    return text


def _not_edited(template: Path, why: str) -> UsageError:
    # A template laid out in a way init misjudged: nothing is written; the lines can be added by hand.
    return UsageError(
        f"{template} was not edited: with init's lines added, {why}",
        hint="run init without --edit-template and add the lines it prints by hand",
    )


# --- writing --------------------------------------------------------------------------------


def _staged(path: Path, text: str, mode: int) -> Path:
    """The text in a temporary file next to `path`, with `mode`: renamed into place, it appears whole."""
    fd, staged = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".lambdakit-init")
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.chmod(staged, mode)
    return Path(staged)


def _write_new(path: Path, text: str) -> None:
    """A new file, whole or not at all, and never over one that appeared since the plan."""
    path.parent.mkdir(parents=True, exist_ok=True)
    umask = os.umask(0)
    os.umask(umask)
    staged = _staged(path, text, 0o666 & ~umask)
    try:
        os.link(staged, path)  # unlike a rename, fails when the name exists
    except FileExistsError as err:
        raise UsageError(f"{path} appeared while init ran: left as it is", hint="run init again") from err
    finally:
        staged.unlink()


def _replace(path: Path, text: str) -> None:
    staged = _staged(path, text, stat.S_IMODE(path.stat().st_mode))
    try:
        os.replace(staged, path)  # readers see the old template or the new one, never half of it
    except BaseException:
        staged.unlink(missing_ok=True)
        raise
