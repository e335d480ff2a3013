"""samconfig.toml read into frozen facts: one environment's stack, region and parameter overrides."""

from __future__ import annotations

import shlex
import tomllib
from dataclasses import dataclass
from pathlib import Path

from builder.errors import UsageError


@dataclass(frozen=True, kw_only=True)
class SamEnvironment:
    name: str
    stack_name: str
    region: str | None
    parameters: dict[str, str]  # parameter_overrides, in order


def _parse_overrides(raw: object, where: str) -> dict[str, str]:
    try:
        items = shlex.split(raw) if isinstance(raw, str) else raw
    except ValueError as err:  # an unclosed quote
        raise UsageError(f"{where}: parameter_overrides: {err}", hint="fix its quoting") from err
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        raise UsageError(
            f"{where}: parameter_overrides is neither a string nor a list of strings",
            hint='write parameter_overrides = ["Key=Value", ...]',
        )
    pairs = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"{where}: parameter override {item!r} is not KEY=VALUE", hint="fix it")
        pairs[key] = value
    return pairs


def _parameters(section: object, command: str) -> dict[str, object]:
    """A command's table of one environment ([env.deploy.parameters]); {} when absent."""
    table = section.get(command, {}) if isinstance(section, dict) else None
    parameters = table.get("parameters", {}) if isinstance(table, dict) else None
    return parameters if isinstance(parameters, dict) else {}


def read_samconfig(path: Path, env: str) -> SamEnvironment:
    try:
        config = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise UsageError(
            f"cannot read {path}: {err}", hint="samconfig.toml sits next to template.yaml"
        ) from err
    if env not in config or env == "version":
        known = ", ".join(name for name in config if name != "version")
        raise UsageError(f"{path} has no environment {env!r}", hint=f"choose one of: {known}")
    section = config[env]
    if not isinstance(section, dict):
        raise UsageError(
            f"{path}: {env!r} is not an environment table", hint=f"write [{env}.deploy.parameters]"
        )
    merged = {**_parameters(section, "global"), **_parameters(section, "deploy")}
    stack_name, region = merged.get("stack_name"), merged.get("region")
    if not isinstance(stack_name, str) or not stack_name:
        raise UsageError(f"{path}: environment {env!r} sets no stack_name", hint="add stack_name to it")
    if region is not None and not isinstance(region, str):
        raise UsageError(f"{path}: environment {env!r}: region is not a string", hint='region = "us-east-1"')
    return SamEnvironment(
        name=env,
        stack_name=stack_name,
        region=region,
        parameters=_parse_overrides(merged.get("parameter_overrides", []), f"{path} [{env}]"),
    )
