"""The runtime catalogue: every fact about a Lambda Python runtime comes from here.

The facts live in data/runtimes.json (one row per Python version); this module
loads them, checks them, and derives what the rest of the tool asks for
(wheel tags, image names, ELF machine). Adding python3.15 is one JSON row.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal, cast

from builder import DATA_DIR

Arch = Literal["x86_64", "arm64"]
ARCHES: tuple[Arch, ...] = ("x86_64", "arm64")

DEFAULT_RUNTIME = "python3.12"
DEFAULT_ARCH: Arch = "x86_64"


class CatalogueError(ValueError):
    """The runtime catalogue itself is inconsistent (a bug in the data file)."""


def _glibc_tuple(text: str) -> tuple[int, int]:
    major, minor = text.split(".")
    return int(major), int(minor)


@dataclass(frozen=True, kw_only=True)
class ArchFacts:
    name: Arch
    wheel_arch: str
    elf_machine: str
    elf_class: int
    docker_platform: str
    debian_arch: str  # dpkg's and debootstrap's name
    multiarch: str
    dynamic_loader: str

    @property
    def docker_arch(self) -> str:
        return self.docker_platform.split("/")[1]

    def runs(self, machine: str, elf_class: int) -> bool:
        """Whether an ELF file with this header's machine and class can load on the arch."""
        return machine == self.elf_machine and elf_class == self.elf_class


@dataclass(frozen=True, kw_only=True)
class Target:
    """One runtime on one architecture: what a layer is built and checked for."""

    runtime: str
    version: str
    os_id: str
    os_name: str
    glibc: tuple[int, int]
    package_manager: str
    deprecated: bool
    arch: ArchFacts
    platform_tags: tuple[str, ...]
    build_image: str
    runtime_image: str
    # PEP 508 marker values on the target, as pairs (a Target is hashable). platform_release
    # and platform_version (the kernel) are not modelled: markers on them see this host's.
    markers: tuple[tuple[str, str], ...]
    # The highest glibc at or below the runtime's that uv has a platform name for.
    uv_platform_glibc: str
    # The Debian suite that ships this CPython (for either arch): a stand-in's interpreter
    # where this machine has no build of its own to copy. None: no suite has it.
    debian_suite: str | None

    @property
    def marker_environment(self) -> dict[str, str]:
        return dict(self.markers)

    @property
    def uv_platform(self) -> str:
        return f"{self.arch.wheel_arch}-manylinux_{self.uv_platform_glibc.replace('.', '_')}"

    @property
    def python_tag(self) -> str:
        return "cp" + self.version.replace(".", "")

    @property
    def version_tuple(self) -> tuple[int, int]:
        major, minor = self.version.split(".")
        return int(major), int(minor)

    @property
    def glibc_text(self) -> str:
        return f"{self.glibc[0]}.{self.glibc[1]}"

    @property
    def extension_suffixes(self) -> tuple[str, ...]:
        """File suffixes CPython on this target loads extension modules from."""
        soabi = f"cpython-{self.version.replace('.', '')}-{self.arch.multiarch}"
        return (f".{soabi}.so", ".abi3.so", ".so")

    @property
    def site_packages(self) -> str:
        return f"python/lib/python{self.version}/site-packages"

    def describe(self) -> str:
        return f"{self.runtime} {self.arch.name} ({self.os_name}, glibc {self.glibc_text})"


@cache
def _catalogue() -> dict[str, Any]:
    text = (DATA_DIR / "runtimes.json").read_text()
    data: dict[str, Any] = json.loads(text)
    _check(data)
    return data


def _check(data: dict[str, Any]) -> None:
    oses = data["operating_systems"]
    arches = data["architectures"]
    if set(arches) != set(ARCHES):
        raise CatalogueError(f"architectures must be {ARCHES}, found {sorted(arches)}")
    seen: set[str] = set()
    previous: tuple[int, int] | None = None
    for row in data["runtimes"]:
        if row["name"] != f"python{row['version']}":
            raise CatalogueError(f"runtime {row['name']} does not match version {row['version']}")
        if row["name"] in seen:
            raise CatalogueError(f"runtime {row['name']} listed twice")
        if row["os"] not in oses:
            raise CatalogueError(f"runtime {row['name']} names unknown OS {row['os']}")
        version = _glibc_tuple(row["version"])
        if previous is not None and version <= previous:
            raise CatalogueError("runtimes must be listed in increasing version order")
        # A newer runtime never ships an older glibc than the one before it.
        if previous is not None:
            before = data["runtimes"][len(seen) - 1]
            if _glibc_tuple(oses[row["os"]]["glibc"]) < _glibc_tuple(oses[before["os"]]["glibc"]):
                raise CatalogueError(f"{row['name']} has an older glibc than {before['name']}")
        seen.add(row["name"])
        previous = version
    for row in data["runtimes"]:
        if not row["full_version"].startswith(row["version"] + "."):
            raise CatalogueError(
                f"{row['name']}: full_version {row['full_version']} is not {row['version']}.x"
            )
        if row["debian_suite"] is not None and row["debian_suite"] not in data["debian_suites"]:
            raise CatalogueError(f"{row['name']}: unknown Debian suite {row['debian_suite']}")
    for alias in data["manylinux_aliases"]:
        unknown = set(alias["arches"]) - set(arches)
        if unknown:
            raise CatalogueError(f"alias {alias['tag']} names unknown arches {sorted(unknown)}")


def runtime_names() -> list[str]:
    return [row["name"] for row in _catalogue()["runtimes"]]


def platform_tags(glibc: tuple[int, int], arch: Arch) -> tuple[str, ...]:
    """Every manylinux platform tag a system with this glibc accepts, newest first.

    pip does not expand manylinux_X_Y to older tags when --platform is given,
    so the full list is spelled out, legacy aliases included.
    """
    data = _catalogue()
    wheel_arch = data["architectures"][arch]["wheel_arch"]
    floor = _glibc_tuple(data["manylinux_floor"][arch])
    if glibc[0] != floor[0]:
        raise CatalogueError("glibc major versions other than 2 are not modelled")
    tags = [f"manylinux_{glibc[0]}_{minor}_{wheel_arch}" for minor in range(glibc[1], floor[1] - 1, -1)]
    for alias in data["manylinux_aliases"]:
        if arch in alias["arches"] and _glibc_tuple(alias["glibc"]) <= glibc:
            tags.append(f"{alias['tag']}_{wheel_arch}")
    return tuple(tags)


@cache
def target(runtime: str, arch: str) -> Target:
    """The Target for a runtime name and arch; ValueError names the valid choices."""
    data = _catalogue()
    rows = {row["name"]: row for row in data["runtimes"]}
    if runtime not in rows:
        raise ValueError(f"unknown runtime {runtime!r}; choose one of {', '.join(rows)}")
    if arch not in data["architectures"]:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHES)}")
    row = rows[runtime]
    os_facts = data["operating_systems"][row["os"]]
    facts = arch_facts(arch)
    glibc = _glibc_tuple(os_facts["glibc"])
    names = {"runtime": runtime, "version": row["version"], "arch": arch}
    return Target(
        runtime=runtime,
        version=row["version"],
        os_id=row["os"],
        os_name=os_facts["name"],
        glibc=glibc,
        package_manager=os_facts["package_manager"],
        deprecated=row["deprecated"],
        arch=facts,
        platform_tags=platform_tags(glibc, facts.name),
        build_image=data["images"]["build"].format(**names),
        runtime_image=data["images"]["runtime"].format(**names),
        markers=tuple(
            sorted(
                {
                    **data["marker_environment"],
                    "implementation_version": row["full_version"],
                    "python_full_version": row["full_version"],
                    "python_version": row["version"],
                    "platform_machine": facts.wheel_arch,
                }.items()
            )
        ),
        uv_platform_glibc=max(
            (g for g in data["uv_platforms"] if _glibc_tuple(g) <= glibc), key=_glibc_tuple
        ),
        debian_suite=row["debian_suite"],
    )


def debian_suite_name(suite: str) -> str:
    """ "Debian 12 (bookworm)" for "bookworm"."""
    suites: dict[str, str] = _catalogue()["debian_suites"]
    return suites[suite]


def arch_facts(name: str) -> ArchFacts:
    facts = _catalogue()["architectures"][name]
    # Found, so one of ARCHES: _check holds the catalogue's architectures to exactly those.
    return ArchFacts(name=cast(Arch, name), **facts)


def arch_of_machine(machine: str) -> ArchFacts | None:
    """The architecture a kernel's or engine's machine name means: x86_64, aarch64, amd64, arm64."""
    for name in ARCHES:
        facts = arch_facts(name)
        if machine in (name, facts.wheel_arch, facts.docker_arch):
            return facts
    return None


def all_targets() -> list[Target]:
    return [target(name, arch) for name in runtime_names() for arch in ARCHES]
