"""Resolve with uv for the target: its markers, its interpreter, wheels only, no Docker.

uv evaluates environment markers for the target (`--python-version` with the
runtime's full version, `--python-platform` for its OS and CPU), where pip
evaluates them for this host. uv's platform names jump from manylinux_2_17 to
manylinux_2_28: for a runtime whose glibc lies between (Amazon Linux 2, 2.26)
the highest name at or below it is used (the catalogue's `uv_platforms`), so a
tag above the runtime's glibc is never accepted; wheels tagged only
manylinux_2_18 to 2_26 are not seen (the pip backend sees them, with host
markers). uv is also the only parser of the requirements file: hashes
(enforced), -r/-c includes, continuations, direct URLs, index options, and
PEP 751 pylock.toml files.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from uv import find_uv_bin

from builder.availability import Availability
from builder.backends import (
    Resolved,
    ResolveRequest,
    installed_distributions,
    local_failure,
    no_wheel_error,
    refuse_source_builds,
    run_resolver,
    unresolved_error,
)
from builder.errors import EnvironmentProblem, LambdakitError, ResolveError, UsageError
from builder.layout import PYTHON_DIR
from builder.progress import Progress
from builder.runtimes import Target

_NO_WHEELS = re.compile(r"Because (?:only )?([A-Za-z0-9_.\-]+)(\S*) has no (?:usable )?wheels")
_HASH_MISMATCH = re.compile(r"Hash mismatch for `([^`]+)`")
_UNREADABLE = re.compile(r"(?:Couldn't parse|Failed to parse|Unexpected '-', expected|Invalid `)")
_NETWORK = (
    "Failed to fetch",
    "error sending request",
    "dns error",
    "tcp connect error",
    "operation timed out",
    "Request failed after",
)


def uv_binary() -> str:
    """The uv package ships the binary for this platform."""
    return find_uv_bin()


def uv_argv(target: Target, requirements: Path, dest: Path, interpreter: str) -> list[str]:
    return [
        uv_binary(), "pip", "install",
        "--target", str(dest),
        "--python", interpreter,  # only to run uv's installer: markers and tags come from the two below
        "--python-version", target.marker_environment["python_full_version"],
        "--python-platform", target.uv_platform,
        "--only-binary", ":all:",
        # Copies, not hard links into uv's cache: the layer's files are its own, and a change to
        # one can never reach the cache (or another layer built from it).
        "--link-mode", "copy",
        "--no-config",  # a uv.toml of the project or user must not change what ships
        "--no-progress",
        "-r", str(requirements),
    ]  # fmt: skip


def explain_failure(output: str, target: Target) -> LambdakitError:
    if match := _UNREADABLE.search(output):
        detail = output[match.start() :].strip()
        return UsageError(
            f"uv could not read the requirements: {detail}", hint="fix the line it points to", step="resolve"
        )
    if (problem := local_failure("uv", output)) is not None:
        return problem
    if any(marker in output for marker in _NETWORK):
        last = [line.strip() for line in output.strip().splitlines() if line.strip()][-1:]
        return EnvironmentProblem(
            f"the package index could not be reached: {last[0] if last else 'no answer'}",
            hint="check network access, or the index options in the requirements file "
            "(--index-url) and UV_INDEX_URL / UV_DEFAULT_INDEX",
            step="resolve",
        )
    if match := _HASH_MISMATCH.search(output):
        return ResolveError(
            f"hash mismatch for {match.group(1)}: the file downloaded is not the one the requirements "
            "file pins; nothing was published",
            hint="regenerate the hashes (pip-compile --generate-hashes) or check where the index points",
            step="resolve",
        )
    if match := _NO_WHEELS.search(output):
        tried = f"platform {target.uv_platform} (every manylinux tag up to glibc {target.uv_platform_glibc})"
        return no_wheel_error(match.group(1) + match.group(2), match.group(1), target, tried)
    return unresolved_error("uv", output, target)


class UvBackend:
    name = "uv"

    def available(self, target: Target) -> Availability:
        return Availability(
            ok=True, reason="uv resolves wheels for the target's markers and platform, no Docker"
        )

    def resolve(self, request: ResolveRequest, progress: Progress) -> Resolved:
        refuse_source_builds(request.requirements, self.name)
        target = request.target
        dest = request.staging / PYTHON_DIR
        code, output = run_resolver(
            uv_argv(target, request.requirements.path, dest, sys.executable), progress
        )
        if code != 0:
            raise explain_failure(output, target)
        # uv's lock on the target folder, not part of what was installed.
        (dest / ".lock").unlink(missing_ok=True)
        notes: tuple[str, ...] = ()
        if target.uv_platform_glibc != target.glibc_text:
            notes = (
                f"uv names no platform for glibc {target.glibc_text}: wheels tagged up to "
                f"glibc {target.uv_platform_glibc} were considered (--backend pip considers every "
                "tag up to the runtime's glibc, with this host's markers)",
            )
        return Resolved(backend=self.name, distributions=installed_distributions(dest), notes=notes)


BACKEND = UvBackend()
