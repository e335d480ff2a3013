"""A SAM template read into frozen facts: its functions and layers, Globals and parameters applied."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from builder import runtimes
from builder.errors import UsageError
from builder.runtimes import Target


@dataclass(frozen=True, kw_only=True)
class LayerSpec:
    logical_id: str
    content_uri: str
    # What the layer declares it fits: how to validate a layer no function of the template uses.
    compatible_runtimes: tuple[str, ...] = ()
    compatible_architectures: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """lambdakit's name for the layer: its source folder (layers/psycopg2/ -> psycopg2)."""
        return Path(self.content_uri).name


@dataclass(frozen=True, kw_only=True)
class FunctionSpec:
    logical_id: str
    code_uri: str
    runtime: str
    arch: str
    layers: tuple[str, ...]  # logical ids of the template's own layers it uses
    http_api: bool  # has HttpApi events
    consumes_queue: bool  # has SQS events
    handler: str = ""  # module.function, as Lambda loads it
    package_type: str = "Zip"  # or Image: a container image, with neither Runtime nor CodeUri

    @property
    def is_python_zip(self) -> bool:
        """A zip package on a Python runtime: what lambdakit builds and validates. Others (Node,
        Java, a container image) are deployed as they are and reported as not validated."""
        # No Runtime at all is a zip function missing its runtime: its target says so.
        return self.package_type == "Zip" and (not self.runtime or self.runtime.startswith("python"))

    @property
    def target(self) -> Target:
        """The runtime and architecture this function runs on; a runtime Lambda lacks is a UsageError."""
        if not self.runtime:
            raise UsageError(
                f"function {self.logical_id} has no Runtime", hint="set Runtime in Globals or on the function"
            )
        try:
            return runtimes.target(self.runtime, self.arch)
        except ValueError as err:
            raise UsageError(
                f"function {self.logical_id}: {err}",
                hint="set its Runtime (in Globals or on the function) to one of those",
            ) from err


@dataclass(frozen=True, kw_only=True)
class AppTemplate:
    path: Path
    functions: tuple[FunctionSpec, ...]
    layers: tuple[LayerSpec, ...]

    def layer(self, logical_id: str) -> LayerSpec:
        return next(layer for layer in self.layers if layer.logical_id == logical_id)

    def users(self, layer_id: str) -> tuple[FunctionSpec, ...]:
        return tuple(f for f in self.functions if layer_id in f.layers)

    def layer_target(self, layer_id: str) -> Target | None:
        """The one runtime and architecture a layer is built for: its functions'. None when no
        function uses it; a UsageError when they differ, since SAM builds one artifact per layer."""
        targets = {f.target for f in self.users(layer_id) if f.is_python_zip}
        if len(targets) > 1:
            described = ", ".join(sorted(t.describe() for t in targets))
            raise UsageError(
                f"{self.path}: layer {layer_id} is used by functions on different targets ({described})",
                hint="give each runtime and architecture a layer of its own",
            )
        return targets.pop() if targets else None

    def function_targets(self) -> dict[str, Target]:
        """Each function's runtime and architecture. A UsageError, before anything runs, for a
        runtime Lambda lacks or a layer shared by functions on different targets."""
        found = {f.logical_id: f.target for f in self.functions if f.is_python_zip}
        for layer in self.layers:
            self.layer_target(layer.logical_id)
        return found

    @property
    def single_target(self) -> Target | None:
        """The runtime and architecture of every function, when they all share one: what the
        Makefiles are told to build for (SAM passes neither to make). None when they differ."""
        targets = set(self.function_targets().values())
        return targets.pop() if len(targets) == 1 else None


class _CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short tags (!Ref, !GetAtt, !Sub ...) read as their long forms."""


def _cfn_tag(loader: _CfnLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        # yaml's stubs want a MappingNode; a tagged node that is neither scalar nor sequence is one.
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _cfn_tag)


def _resolve(value: Any, parameters: Mapping[str, str]) -> Any:
    """A template value with a {"Ref": parameter} replaced by the parameter's value."""
    if isinstance(value, dict) and set(value) == {"Ref"} and value["Ref"] in parameters:
        return parameters[value["Ref"]]
    return value


def read_template(path: Path, overrides: Mapping[str, str] = {}) -> AppTemplate:
    """The functions and layers of a SAM template, with Globals and parameters applied."""
    try:
        document = yaml.load(path.read_text(), Loader=_CfnLoader)  # a SafeLoader: no arbitrary objects
    except (OSError, yaml.YAMLError) as err:
        raise UsageError(
            f"cannot read the SAM template {path}: {err}", hint="run from the project root"
        ) from err
    if not isinstance(document, dict):
        raise UsageError(f"{path} is not a SAM template: it holds no mapping", hint="pass the app's template")

    def table(value: Any, where: str) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise UsageError(
                f"{path}: {where} is not a mapping", hint="fix the template (sam validate says more)"
            )
        return value

    def listed(value: Any, where: str) -> list[Any]:
        if not isinstance(value, list):
            raise UsageError(
                f"{path}: {where} is not a list", hint="fix the template (sam validate says more)"
            )
        return value

    parameters = {
        name: str(spec["Default"])
        for name, spec in table(document.get("Parameters"), "Parameters").items()
        if isinstance(spec, dict) and "Default" in spec
    } | dict(overrides)
    defaults = table(table(document.get("Globals"), "Globals").get("Function"), "Globals.Function")
    resources = {
        name: table(resource, f"resource {name}")
        for name, resource in table(document.get("Resources"), "Resources").items()
    }
    layers = []
    for name, res in resources.items():
        if res.get("Type") != "AWS::Serverless::LayerVersion":
            continue
        props = table(res.get("Properties"), f"{name}.Properties")
        if "ContentUri" not in props:
            raise UsageError(f"{path}: layer {name} has no ContentUri", hint="point it at the layer's folder")
        runtimes_listed = listed(props.get("CompatibleRuntimes", []), f"{name}.CompatibleRuntimes")
        arches_listed = listed(props.get("CompatibleArchitectures", []), f"{name}.CompatibleArchitectures")
        layers.append(
            LayerSpec(
                logical_id=name,
                content_uri=str(props["ContentUri"]),
                compatible_runtimes=tuple(str(_resolve(r, parameters)) for r in runtimes_listed),
                compatible_architectures=tuple(str(_resolve(a, parameters)) for a in arches_listed),
            )
        )
    own_layers = {layer.logical_id for layer in layers}
    functions = []
    for name, res in resources.items():
        if res.get("Type") != "AWS::Serverless::Function":
            continue
        props = table(res.get("Properties"), f"{name}.Properties")
        # SAM puts the Globals' layers first, then the function's own.
        layer_refs = [*listed(defaults.get("Layers", []), "Globals.Function.Layers"),
                      *listed(props.get("Layers", []), f"{name}.Layers")]  # fmt: skip
        archs = listed(
            props.get("Architectures", defaults.get("Architectures", ["x86_64"])), f"{name}.Architectures"
        )
        if len(archs) != 1:
            raise UsageError(
                f"{path}: {name}.Architectures must name one architecture", hint="x86_64 or arm64"
            )
        events = table(props.get("Events"), f"{name}.Events").values()
        event_types = {table(event, f"{name}.Events").get("Type") for event in events}
        functions.append(
            FunctionSpec(
                logical_id=name,
                code_uri=str(props.get("CodeUri", defaults.get("CodeUri", "."))),
                runtime=str(_resolve(props.get("Runtime", defaults.get("Runtime", "")), parameters)),
                arch=str(_resolve(archs[0], parameters)),
                layers=tuple(
                    ref["Ref"] for ref in layer_refs if isinstance(ref, dict) and ref.get("Ref") in own_layers
                ),
                http_api="HttpApi" in event_types,
                consumes_queue="SQS" in event_types,
                handler=str(props.get("Handler", defaults.get("Handler", ""))),
                package_type=str(props.get("PackageType", defaults.get("PackageType", "Zip"))),
            )
        )
    if not functions:
        raise UsageError(f"{path} defines no AWS::Serverless::Function", hint="pass the app's template")
    return AppTemplate(path=path, functions=tuple(functions), layers=tuple(layers))
