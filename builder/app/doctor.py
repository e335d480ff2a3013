"""doctor: what this machine has for building, checking and deploying, each with the fix.

Every check is a small function returning one Finding; none raises. A check that
only some workflows need is optional: it is reported, but does not fail doctor.
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from builder.app.localstack_info import DEFAULT_LOCALSTACK_URL, Fetch, detect_localstack, fetch_json
from builder.app.plan import find_tool
from builder.app.template import read_template
from builder.docker import container, images
from builder.errors import LambdakitError
from builder.host import find_interpreter
from builder.runtimes import DEFAULT_ARCH, DEFAULT_RUNTIME, Target, all_targets, target

SCHEMA = 1
VERSION_TIMEOUT_S = 60


@dataclass(frozen=True, kw_only=True)
class Finding:
    name: str
    ok: bool
    detail: str  # what was found, or what is missing
    fix: str = ""  # what to run when it is missing
    optional: bool = False  # needed by some workflows only

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True, kw_only=True)
class DoctorReport:
    findings: tuple[Finding, ...]

    @property
    def ok(self) -> bool:
        return all(finding.ok or finding.optional for finding in self.findings)

    def to_dict(self) -> dict[str, object]:
        return {"schema": SCHEMA, "ok": self.ok, "checks": [finding.to_dict() for finding in self.findings]}


def check_docker() -> Finding:
    # Optional: without it builds use the uv or pip backend and imports are checked in a local interpreter.
    try:
        version = container.connect().version().get("Version", "?")
    except LambdakitError as err:
        return Finding(name="docker engine", ok=False, detail=err.message, fix=err.hint, optional=True)
    return Finding(name="docker engine", ok=True, detail=f"Docker {version}", optional=True)


def check_image(name: str, docker_platform: str, *, optional: bool) -> Finding:
    availability = images.image_availability(name, docker_platform)
    if availability.ok:
        return Finding(name=f"image {name}", ok=True, detail=availability.reason, optional=optional)
    return Finding(
        name=f"image {name}",
        ok=False,
        detail=availability.reason,
        fix=images.missing_image_hint(name),
        optional=optional,
    )


def check_tool(name: str, fix: str, *, optional: bool = False, env: dict[str, str] | None = None) -> Finding:
    tool = find_tool(name)
    if tool is None:
        return Finding(name=name, ok=False, detail="not installed", fix=fix, optional=optional)
    try:
        proc = subprocess.run(
            [tool, "--version"],
            capture_output=True,
            text=True,
            timeout=VERSION_TIMEOUT_S,
            env={**os.environ, **(env or {})},
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        return Finding(name=name, ok=False, detail=f"{tool} does not run: {err}", fix=fix, optional=optional)
    lines = (proc.stdout or proc.stderr).strip().splitlines()
    if proc.returncode != 0 or not lines:
        detail = f"{tool} --version exited with {proc.returncode}"
        return Finding(name=name, ok=False, detail=detail, fix=fix, optional=optional)
    return Finding(name=name, ok=True, detail=f"{lines[-1]} ({tool})", optional=optional)


def check_localstack(url: str, fetch: Fetch = fetch_json) -> Finding:
    try:
        info = detect_localstack(url, fetch)
    except LambdakitError as err:
        return Finding(name="localstack", ok=False, detail=err.message, fix=err.hint, optional=True)
    notes = []
    if not info.applies_layers:
        notes.append("deploy copies layers into function packages")
    if not info.http_api:
        notes.append("e2e invokes the API function")
    suffix = f" ({'; '.join(notes)})" if notes else ""
    return Finding(name="localstack", ok=True, detail=info.describe() + suffix, optional=True)


def check_postgres(host: str, port: str, *, timeout_s: float = 2.0) -> Finding:
    name = f"postgresql {host}:{port}"
    if not port.isdigit():
        return Finding(
            name=name, ok=False, detail="PGPORT is not a port number", fix="fix PGPORT", optional=True
        )
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            pass
    except OSError as err:
        return Finding(
            name=name,
            ok=False,
            detail=f"no answer ({err})",
            fix="docker compose up -d postgres, or start a local server (pg_ctlcluster 15 main start); "
            "PGHOST and PGPORT choose where to look",
            optional=True,
        )
    return Finding(name=name, ok=True, detail="accepts connections", optional=True)


def check_interpreter(t: Target, *, needed: bool) -> Finding:
    interpreter = find_interpreter(t.version)
    name = f"python{t.version} interpreter"
    if interpreter is None:
        return Finding(
            name=name,
            ok=False,
            detail=f"none: imports for {t.runtime} are reported 'not verified' without a runtime image",
            fix=f"pyenv install {t.version}",
            optional=not needed,
        )
    return Finding(name=name, ok=True, detail=str(interpreter), optional=not needed)


def app_target(project: Path) -> Target:
    """The template's runtime and architecture; the defaults when there is no readable template
    or its functions run on several."""
    try:
        single = read_template(project / "template.yaml").single_target
    except LambdakitError:
        single = None
    return single or target(DEFAULT_RUNTIME, DEFAULT_ARCH)


def doctor(
    project: Path = Path(),
    *,
    endpoint_url: str = DEFAULT_LOCALSTACK_URL,
    environ: Mapping[str, str] = os.environ,
) -> DoctorReport:
    app = app_target(project)
    found = [
        check_docker(),
        check_image(app.runtime_image, app.arch.docker_platform, optional=True),
        check_image(app.build_image, app.arch.docker_platform, optional=True),
        check_tool("sam", "pip install aws-sam-cli"),
        check_tool(
            "samlocal",
            "pip install aws-sam-cli-local (optional: deploy uses sam with AWS_ENDPOINT_URL without it)",
            optional=True,
            env={"DISABLE_DEPRECATION_NOTICE": "1"},
        ),
        check_localstack(endpoint_url),
        check_postgres(environ.get("PGHOST", "127.0.0.1"), environ.get("PGPORT", "5432")),
    ]
    seen = set()
    for t in all_targets():
        if t.version not in seen:
            seen.add(t.version)
            found.append(check_interpreter(t, needed=t.version == app.version))
    return DoctorReport(findings=tuple(found))
