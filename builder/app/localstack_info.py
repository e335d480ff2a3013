"""A running LocalStack's facts, read from its own endpoints: version, edition, services, where it runs.

deploy, e2e and doctor read them: the edition decides whether layers are applied,
the services whether the HTTP API is emulated, and where it runs how its
functions reach this host. Making a LocalStack run Lambda code offline is
localstack.py's; this module only reads one that runs.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import docker.errors

from builder.docker import container, network
from builder.errors import EnvironmentProblem

# What LocalStack reports in /_localstack/info for editions that apply layers.
PAID_EDITIONS = frozenset({"pro", "enterprise", "ultimate", "team"})
PROBE_TIMEOUT_S = 3.0
# Dummy credentials LocalStack accepts; real ones must never reach it by accident.
LOCALSTACK_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}
LOCALSTACK_REGION = "us-east-1"


@dataclass(frozen=True, kw_only=True)
class LocalStackInfo:
    url: str
    version: str
    edition: str  # as LocalStack reports it: community, pro, ... ("unknown" when run from source)
    license_active: bool
    services: tuple[str, ...]
    # Run in a container (docker compose) or on this host (scripts/localstack.sh): a host-run
    # LocalStack's Lambda containers sit on Docker's default bridge.
    in_docker: bool = True
    # This host's address on that bridge, where a host-run LocalStack's functions reach this host.
    bridge_address: str | None = None

    @property
    def applies_layers(self) -> bool:
        return self.license_active or self.edition in PAID_EDITIONS

    @property
    def http_api(self) -> bool:
        """Whether API Gateway v2 (the template's HttpApi) is emulated."""
        return "apigatewayv2" in self.services

    def describe(self) -> str:
        layers = "applies layers" if self.applies_layers else "does not apply layers"
        api = "emulates HTTP APIs" if self.http_api else "no HTTP API emulation"
        if self.in_docker:
            where = "in Docker"
        elif self.bridge_address:
            where = f"on this host (its functions reach it at {self.bridge_address})"
        else:
            where = "on this host (no Docker engine here to tell its functions' address for it)"
        return f"LocalStack {self.version} {self.edition} at {self.url}, {where}: {layers}, {api}"

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "applies_layers": self.applies_layers, "http_api": self.http_api}


Fetch = Callable[[str], dict[str, Any]]


def fetch_json(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT_S) as response:
        document: dict[str, Any] = json.loads(response.read())
    return document


def bridge_address() -> str | None:
    """This host's address on Docker's default bridge; None without a local Docker engine."""
    try:
        return network.default_bridge(container.connect()).address
    except (EnvironmentProblem, docker.errors.DockerException):
        return None


def detect_localstack(url: str, fetch: Fetch = fetch_json) -> LocalStackInfo:
    """LocalStack's version, edition and services, from its own endpoints."""
    base = url.rstrip("/")
    try:
        health = fetch(f"{base}/_localstack/health")
        info = fetch(f"{base}/_localstack/info")
    except (OSError, ValueError) as err:
        raise EnvironmentProblem(
            f"LocalStack does not answer at {base} ({err})",
            hint="start it: scripts/localstack.sh start (or docker compose up -d), or pass --endpoint-url",
            step="detect",
        ) from err
    services = health.get("services", {})
    return LocalStackInfo(
        url=base,
        version=str(info.get("version") or health.get("version") or "unknown"),
        edition=str(info.get("edition") or health.get("edition") or "unknown").lower(),
        license_active=bool(info.get("is_license_activated")),
        services=tuple(sorted(name for name, state in services.items() if state != "disabled")),
        in_docker=bool(info.get("is_docker", True)),
    )
