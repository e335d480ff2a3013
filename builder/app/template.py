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


@dataclass(frozen=True, kw_only=True)
class AppTemplate:
    path: Path
    functions: tuple[FunctionSpec, ...]
    layers: tuple[LayerSpec, ...]

    def layer(self, logical_id: str) -> LayerSpec:
        return next(layer for layer in self.layers if layer.logical_id == logical_id)

    @property
    def target(self) -> Target:
        """The one runtime and architecture of the app: the Makefiles build for one."""
        pairs = {(f.runtime, f.arch) for f in self.functions}
        if len(pairs) != 1:
            raise UsageError(
                f"{self.path} mixes runtimes or architectures: {sorted(pairs)}",
                hint="lambdakit deploys one runtime and architecture per template",
            )
        runtime, arch = pairs.pop()
        try:
            return runtimes.target(runtime, arch)
        except ValueError as err:
            raise UsageError(
                f"{self.path}: {err}",
                hint="set the functions' Runtime (Globals or each function) to one of those",
            ) from err


class _CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short tags (!Ref, !GetAtt, !Sub ...) read as their long forms."""


def _cfn_tag(loader: _CfnLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
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
    parameters = {
        name: str(spec["Default"])
        for name, spec in document.get("Parameters", {}).items()
        if "Default" in spec
    } | dict(overrides)
    defaults = document.get("Globals", {}).get("Function", {})
    resources = document.get("Resources", {})
    layers = tuple(
        LayerSpec(logical_id=name, content_uri=str(res["Properties"]["ContentUri"]))
        for name, res in resources.items()
        if res.get("Type") == "AWS::Serverless::LayerVersion"
    )
    own_layers = {layer.logical_id for layer in layers}
    functions = []
    for name, res in resources.items():
        if res.get("Type") != "AWS::Serverless::Function":
            continue
        props = res.get("Properties", {})
        # SAM puts the Globals' layers first, then the function's own.
        layer_refs = [*defaults.get("Layers", []), *props.get("Layers", [])]
        archs = props.get("Architectures", defaults.get("Architectures", ["x86_64"]))
        functions.append(
            FunctionSpec(
                logical_id=name,
                code_uri=str(props.get("CodeUri", defaults.get("CodeUri", "."))),
                runtime=str(_resolve(props.get("Runtime", defaults.get("Runtime")), parameters)),
                arch=str(_resolve(archs[0], parameters)),
                layers=tuple(
                    ref["Ref"] for ref in layer_refs if isinstance(ref, dict) and ref.get("Ref") in own_layers
                ),
                http_api=any(event.get("Type") == "HttpApi" for event in props.get("Events", {}).values()),
                consumes_queue=any(event.get("Type") == "SQS" for event in props.get("Events", {}).values()),
            )
        )
    if not functions:
        raise UsageError(f"{path} defines no AWS::Serverless::Function", hint="pass the app's template")
    return AppTemplate(path=path, functions=tuple(functions), layers=layers)
