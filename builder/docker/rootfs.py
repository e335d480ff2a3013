"""The stand-ins' base images: a Debian root filesystem made once by debootstrap, cached as a
tar, and loaded into the engine under a tag that names its suite, architecture and packages.

Under a copied local CPython build the system is installed whole (the build stand-in adds
packages with apt). A suite's own python is only unpacked, not configured: no package's
maintainer scripts run, since under qemu they take minutes (byte-compiling the standard
library) and an interpreter run needs none.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import docker

from builder.docker import container
from builder.errors import EnvironmentProblem
from builder.host import cache_root
from builder.progress import Progress, run_streamed
from builder.runtimes import ArchFacts

# Bump when the root filesystems change in a way their package list does not show.
ROOTFS_VERSION = "1"
# The root filesystem under a copied local CPython build.
LOCAL_SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
# A base image's label: the glibc its root filesystem has, read when it is made (from
# dpkg's records, or libc6's package name where nothing was configured): sid's moves on.
GLIBC_LABEL = "org.lambdakit.standin-base.glibc"

# Beyond minbase: the shared libraries a CPython build's standard extension
# modules load (ssl, ctypes, sqlite3, readline, curses, nis, uuid, pyexpat).
BASE_PACKAGES = (
    "libssl3", "libffi8", "libsqlite3-0", "libreadline8", "libncursesw6", "libexpat1",
    "libuuid1", "libnsl2", "libtirpc3", "libbz2-1.0", "liblzma5", "zlib1g",
)  # fmt: skip
# Debootstrap leaves package caches and docs no image needs.
_ROOTFS_TRIM = ("var/cache/apt", "var/lib/apt/lists", "usr/share/doc", "usr/share/man", "usr/share/info",
                "usr/share/locale")  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class RootFs:
    """A Debian root filesystem made by debootstrap, imported as the stand-ins' base image."""

    arch: ArchFacts
    suite: str
    python: str | None = None  # the suite's python3.X, as the interpreter; else a copied one's libraries

    @property
    def packages(self) -> tuple[str, ...]:
        # Debian's python brings the libraries its standard library loads; a copied build
        # needs them named (their names differ between suites: these are bookworm's).
        return (f"python{self.python}",) if self.python else BASE_PACKAGES

    @property
    def digest(self) -> str:
        method = "unpacked" if self.python else "installed"
        return content_digest(ROOTFS_VERSION, self.suite, method, *self.packages)[:12]

    @property
    def tag(self) -> str:
        return f"lambdakit/standin-base:{self.suite}-{self.arch.name}-{self.digest}"


def content_digest(*parts: str) -> str:
    """What the image tags and recipe labels carry, so that a change of any part means a rebuild."""
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def cache_dir() -> Path:
    return cache_root() / "standin"


def ensure_base_image(client: docker.DockerClient, base: RootFs, progress: Progress) -> str:
    """The base image made if missing; returns the glibc version its root filesystem has."""
    facts = container.image_facts(client, base.tag)
    if facts is None or GLIBC_LABEL not in facts.labels:
        path, glibc = tarball(base, progress)
        progress.step("stand-in", f"docker import {path.name} as {base.tag}")
        container.import_rootfs(
            client, path, base.tag, base.arch.docker_platform, labels={GLIBC_LABEL: glibc}
        )
        return glibc
    return facts.labels[GLIBC_LABEL]


def tarball(base: RootFs, progress: Progress) -> tuple[Path, str]:
    """A minimal Debian root filesystem as a tar, made once with debootstrap and cached, and its glibc.

    A suite's python is only unpacked: debootstrap's first stage fetches and unpacks the
    base system on this machine, then the interpreter's packages are unpacked beside it.
    """
    cache = cache_dir()
    path = cache / f"{base.suite}-{base.arch.name}-minbase-{base.digest}.tar"
    glibc_file = path.with_suffix(".glibc")
    if path.is_file() and glibc_file.is_file():
        return path, glibc_file.read_text().strip()
    if shutil.which("debootstrap") is None:
        raise EnvironmentProblem(
            "debootstrap is needed to build the stand-in images' root filesystem",
            hint="apt-get install -y debootstrap (or scripts/ensure-docker.sh --standin)",
        )
    if os.geteuid() != 0:
        raise EnvironmentProblem(
            "debootstrap must run as root", hint="run `lambdakit images build-standins` as root"
        )
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="rootfs-", dir=cache) as scratch:
        root = Path(scratch) / "root"
        argv = ["debootstrap", f"--arch={base.arch.debian_arch}", "--variant=minbase"]
        argv += ["--foreign"] if base.python else []
        argv += [f"--include={','.join(base.packages)}", base.suite, str(root), debian_mirror()]
        run_step(argv, progress, step=f"debootstrap {base.suite} {base.arch.name} (once)")
        glibc = _unpack_downloaded(root, progress) if base.python else _glibc_of(root)
        for rel in _ROOTFS_TRIM:
            shutil.rmtree(root / rel, ignore_errors=True)
        partial = path.with_suffix(".partial")
        run_step(
            ["tar", "--numeric-owner", "-C", str(root), "-cf", str(partial), "."],
            progress,
            step="pack rootfs",
        )
        glibc_file.write_text(glibc + "\n")
        partial.rename(path)
    return path, glibc


def _unpack(deb: Path, root: Path) -> None:
    """What dpkg would unpack, through the root's merged-/usr links (`dpkg-deb --extract`
    would replace a link such as bin -> usr/bin with a folder of the package's files)."""
    argv = ["dpkg-deb", "--fsys-tarfile", str(deb)]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as archive:
        untar = subprocess.run(
            ["tar", "--extract", "--keep-directory-symlink", "--directory", str(root)],
            stdin=archive.stdout,
            capture_output=True,
            text=True,
        )
        assert archive.stderr is not None
        errors = archive.stderr.read().strip()
    if archive.returncode != 0 or untar.returncode != 0:
        detail = " | ".join(text for text in (errors, untar.stderr.strip()) if text)
        raise EnvironmentProblem(f"cannot unpack {deb.name}: {detail}", step="stand-in")


def _glibc_of(root: Path) -> str:
    """The upstream glibc version of libc6 in an installed root filesystem ("2.36" for 2.36-9+deb12u7)."""
    status = (root / "var" / "lib" / "dpkg" / "status").read_text()
    for record in status.split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in record.splitlines() if ": " in line and not line.startswith(" ")
        )
        if fields.get("Package") == "libc6" and (match := re.match(r"(\d+\.\d+)", fields.get("Version", ""))):
            return match.group(1)
    raise EnvironmentProblem(f"debootstrap left no libc6 in {root}", step="stand-in")


def _unpack_downloaded(root: Path, progress: Progress) -> str:
    """Unpack every package debootstrap's first stage downloaded; returns libc6's glibc version."""
    debs = sorted((root / "var" / "cache" / "apt" / "archives").glob("*.deb"))
    progress.step("stand-in", f"unpack {len(debs)} packages (no maintainer scripts)")
    for deb in debs:
        _unpack(deb, root)
    # What base-passwd's scripts would write: root and the system users and groups.
    for name in ("passwd", "group"):
        master = root / "usr" / "share" / "base-passwd" / f"{name}.master"
        if master.is_file() and not (root / "etc" / name).exists():
            shutil.copy(master, root / "etc" / name)
    shutil.rmtree(root / "debootstrap", ignore_errors=True)
    for deb in debs:
        if match := re.fullmatch(r"libc6_(\d+\.\d+)[^_]*_\w+\.deb", deb.name):
            return match.group(1)
    raise EnvironmentProblem(f"debootstrap downloaded no libc6 into {root}", step="stand-in")


def debian_mirror() -> str:
    """LAMBDAKIT_DEBIAN_MIRROR, else the Debian mirror apt is configured with, else deb.debian.org."""
    configured = os.environ.get("LAMBDAKIT_DEBIAN_MIRROR")
    if configured:
        return configured
    sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*.sources"))]
    for source in sources:
        try:
            text = source.read_text()
        except OSError:
            continue
        for match in re.finditer(
            r"(?:^deb\s+(?:\[[^]]*\]\s+)?|^URIs:\s*)(\S+/debian)/?\s", text, re.MULTILINE
        ):
            return match.group(1)
    return DEFAULT_MIRROR


def run_step(argv: list[str], progress: Progress, *, step: str) -> None:
    """A tool run as a named step of the stand-in build; a failure names the step and its last lines."""
    progress.step("stand-in", step)
    progress.output("$ " + " ".join(argv))
    code, tail = run_streamed(argv, progress, keep=3)
    if code != 0:
        raise EnvironmentProblem(f"{argv[0]} failed ({step}): " + " | ".join(tail), step="stand-in")
