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


def _parse_overrides(raw: str | list[str]) -> dict[str, str]:
    items = shlex.split(raw) if isinstance(raw, str) else raw
    pairs = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"parameter override {item!r} is not KEY=VALUE", hint="fix samconfig.toml")
        pairs[key] = value
    return pairs


def read_samconfig(path: Path, env: str) -> SamEnvironment:
    try:
        config = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise UsageError(
            f"cannot read {path}: {err}", hint="samconfig.toml sits next to template.yaml"
        ) from err
    if env not in config or env == "version":
        known = ", ".join(name for name in config if name != "version")
        raise UsageError(f"{path} has no environment {env!r}", hint=f"choose one of: {known}")
    section = config[env]
    merged = {
        **section.get("global", {}).get("parameters", {}),
        **section.get("deploy", {}).get("parameters", {}),
    }
    if "stack_name" not in merged:
        raise UsageError(f"{path}: environment {env!r} sets no stack_name", hint="add stack_name to it")
    return SamEnvironment(
        name=env,
        stack_name=merged["stack_name"],
        region=merged.get("region"),
        parameters=_parse_overrides(merged.get("parameter_overrides", [])),
    )
