"""Resolve with pip for a foreign platform: only wheels the runtime can load, no Docker.

pip is told the target's exact interpreter, ABI and every manylinux tag up to the
runtime's glibc (uv cannot name glibc 2.18 to 2.27); with --only-binary=:all: it can
never fall back to building from source on this host. But pip evaluates environment
markers for THIS host, not the target: a dependency whose marker holds only on the
target (`exceptiongroup; python_version < "3.11"` for python3.10 built on 3.11) is
left out, which the missing-dependency rule then reports. uv (the default) has no
such gap.
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
from pathlib import Path

from packaging.utils import canonicalize_name

from builder.availability import Availability
from builder.backends import (
    Resolved,
    ResolveRequest,
    local_failure,
    no_wheel_error,
    refuse_source_builds,
    run_resolver,
    unresolved_error,
)
from builder.errors import EnvironmentProblem, ResolveError, UsageError
from builder.layout import PYTHON_DIR
from builder.progress import Progress
from builder.runtimes import Target

_NO_MATCH = re.compile(
    r"Could not find a version that satisfies the requirement (\S+)(?: \(from versions: ([^)]*)\))?"
)
_NETWORK = (
    "Network is unreachable",
    "Failed to establish a new connection",
    "Temporary failure in name resolution",
)


def pip_argv(target: Target, requirements: Path, dest: Path, report: Path) -> list[str]:
    argv = [sys.executable, "-m", "pip", "install", "--target", str(dest)]
    for tag in target.platform_tags:
        argv += ["--platform", tag]
    argv += [
        "--python-version", target.version,
        "--implementation", "cp",
        "--abi", target.python_tag,
        "--only-binary=:all:",
        # pip would byte-compile with the host's Python; those .pyc files are useless on Lambda.
        "--no-compile",
        "--no-input",
        "--disable-pip-version-check",
        "--progress-bar", "off",
        "--report", str(report),
        "-r", str(requirements),
    ]  # fmt: skip
    return argv


def _explain_failure(output: str, target: Target) -> ResolveError | EnvironmentProblem:
    if (problem := local_failure("pip", output)) is not None:
        return problem
    if any(marker in output for marker in _NETWORK):
        return EnvironmentProblem(
            "pip could not reach the package index",
            hint="check network access or the index settings in pip.conf / PIP_INDEX_URL",
            step="resolve",
        )
    match = _NO_MATCH.search(output)
    if match:
        requirement = match.group(1)
        versions = (match.group(2) or "none").strip()
        tags = ", ".join(target.platform_tags[:3]) + f", ... ({len(target.platform_tags)} tags)"
        name = re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0]
        tried = f"platforms {tags}; versions that have a wheel for this target: {versions}"
        return no_wheel_error(requirement, name, target, tried)
    return unresolved_error("pip", output, target)


class PipBackend:
    name = "pip"

    def available(self, target: Target) -> Availability:
        return Availability(ok=True, reason="pip resolves manylinux wheels for any target, no Docker needed")

    def resolve(self, request: ResolveRequest, progress: Progress) -> Resolved:
        refuse_source_builds(request.requirements, self.name)
        if request.requirements.is_lock:
            raise UsageError(
                f"{request.requirements.path} is a pylock.toml, which pip does not install from",
                hint="use --backend uv (the default)",
                step="resolve",
            )
        dest = request.staging / PYTHON_DIR
        with tempfile.TemporaryDirectory(prefix="lambdakit-pip-") as scratch:
            report = Path(scratch) / "report.json"
            argv = pip_argv(request.target, request.requirements.path, dest, report)
            # pip's own explanation of a failure is in its last lines.
            code, output = run_resolver(argv, progress)
            if code != 0:
                raise _explain_failure(output, request.target)
            installed = json.loads(report.read_text())["install"]
        distributions = {
            canonicalize_name(item["metadata"]["name"]): item["metadata"]["version"] for item in installed
        }
        return Resolved(backend=self.name, distributions=dict(sorted(distributions.items())))


BACKEND = PipBackend()
