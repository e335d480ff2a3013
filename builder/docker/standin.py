"""Offline stand-ins for the official Lambda runtime and SAM build images.

Where no registry is reachable, `lambdakit images build-standins` builds images
tagged with the official names (public.ecr.aws/lambda/python:X.Y-<arch>,
public.ecr.aws/sam/build-pythonX.Y:latest-<arch>) from a Debian root filesystem
(debootstrap) and a local CPython build of the same minor version (pyenv's), so
that the Docker backend, the container import check and `sam local invoke` run
unchanged. An official image already present under that name is never replaced.

What a stand-in proves: the layer's directory layout is what the runtime puts on
sys.path (/opt/python, /opt/python/lib/pythonX.Y/site-packages), its extension
modules were built for this CPython minor version and architecture, and the
shared libraries it carries in lib/ are found through LD_LIBRARY_PATH (/opt/lib)
in a system that lacks them; the build image proves that a source build
(psycopg2 against libpq) and the library bundling work. pip in the build
stand-in picks wheels for the real runtime's glibc, not Debian's (a PEP 600
_manylinux hook), so wheel choice matches the real build image.

What it does NOT prove: the stand-ins run Debian, whose glibc is newer than the
Lambda runtime's they stand in for (2.31 to 2.43 here, against 2.26 on Amazon Linux 2
and 2.34 on Amazon Linux 2023), so a binary that
needs a newer glibc than Lambda has imports here and fails on Lambda; code
compiled in the build stand-in, and the Debian libraries bundled with it, need
up to glibc 2.34, which Amazon Linux 2 lacks. The static audit is what catches
glibc and missing-library gaps against the real runtime; the stand-in only shows
the plumbing and the Python-level import. Its system libraries are Debian's, not
Amazon Linux's (a layer can lean on a library the stand-in has and Lambda
lacks), its package manager is apt, not dnf or yum, and /var/runtime holds
awslambdaric from PyPI instead of AWS's runtime and boto3.

Where this machine has no CPython build to copy (another architecture, such as
arm64 on an x86_64 machine, or a version pyenv lacks), the runtime stand-in is a
root filesystem of the Debian suite that ships that version (the catalogue's
debian_suite: bullseye 3.9, bookworm 3.11, trixie 3.13, sid 3.14), for the
target's architecture, whose own python3.X is linked at /var/lang/bin; another
architecture runs through qemu-user-static (binfmt_misc). Its packages are unpacked,
not configured: no maintainer script runs (under qemu they take minutes). It proves the same
things, with Debian's CPython build instead of python.org's. Such stand-ins are
runtime images only: a build stand-in copies a local CPython build, and
compiling under qemu is slow (wheels, the uv or pip backend, cover these targets).

Every stand-in carries the label org.lambdakit.standin=true, with sibling labels
naming what it fakes and how, so results can say "checked in a stand-in".
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

import docker
import docker.errors

from builder.docker import container
from builder.errors import EnvironmentProblem
from builder.host import find_interpreter, host_arch
from builder.progress import Progress, run_streamed
from builder.runtimes import (
    DEFAULT_ARCH,
    ArchFacts,
    Target,
    all_targets,
    debian_suite_name,
    runtime_names,
    target,
)

Kind = Literal["runtime", "build"]
KINDS: tuple[Kind, ...] = ("runtime", "build")
DEFAULT_RUNTIMES = ("python3.11", "python3.12")

# Bump when the images change in a way the recipe hash does not see.
RECIPE_VERSION = "4"
# Bump when the root filesystems change in a way their package list does not show.
ROOTFS_VERSION = "1"
# The root filesystem under a copied local CPython build.
LOCAL_SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
# A base image's label: the glibc its root filesystem has, read when it is made (from
# dpkg's records, or libc6's package name where nothing was configured): sid's moves on.
GLIBC_LABEL = "org.lambdakit.standin-base.glibc"
# /var/runtime of the real images: the runtime interface client, and the AWS SDK
# that AWS ships there (code such as the task worker imports boto3 from it).
RUNTIME_PACKAGES = ("awslambdaric==4.2.2", "boto3==1.43.108")
# The newest releases that still support older Pythons.
RUNTIME_PACKAGES_FOR = {"3.9": ("awslambdaric==4.0.4", "boto3==1.42.97")}

# Beyond minbase: the shared libraries a CPython build's standard extension
# modules load (ssl, ctypes, sqlite3, readline, curses, nis, uuid, pyexpat).
BASE_PACKAGES = (
    "libssl3", "libffi8", "libsqlite3-0", "libreadline8", "libncursesw6", "libexpat1",
    "libuuid1", "libnsl2", "libtirpc3", "libbz2-1.0", "liblzma5", "zlib1g",
)  # fmt: skip
# What a SAM build image offers a source build: a compiler, libc headers, and
# libpq headers with pg_config (on Amazon Linux the Dockerfile installs libpq-devel).
BUILD_PACKAGES = ("gcc", "libc6-dev", "libpq-dev")
# Modules whose import proves the copied interpreter found its shared libraries.
SMOKE_IMPORTS = "ssl, ctypes, sqlite3, bz2, lzma, zlib, decimal, hashlib, uuid, readline, pyexpat"

# Parts of a CPython install no Lambda function uses, left out to keep images small.
_STDLIB_SKIP = {"test", "idlelib", "tkinter", "turtledemo", "ensurepip"}
_KEEP_SITE_PACKAGE = re.compile(r"pip(/|-[^/]*\.dist-info(/|$)|$)")
_SKIP_FILE = re.compile(r"\.opt-[12]\.pyc$|^libpython.*\.a$|^_tkinter\..*\.so$")
# Debootstrap leaves package caches and docs no image needs.
_ROOTFS_TRIM = ("var/cache/apt", "var/lib/apt/lists", "usr/share/doc", "usr/share/man", "usr/share/info",
                "usr/share/locale")  # fmt: skip

# Lambda's environment, as the official runtime images set it.
_LAMBDA_LD_LIBRARY_PATH = (
    "/var/lang/lib:/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:/var/task:/var/task/lib:/opt/lib"
)
_LAMBDA_PATH = "/var/lang/bin:/usr/local/bin:/usr/bin/:/bin:/opt/bin"

# The interpreter goes to /var/lang, as in the official images.
# Native stand-ins copy a local CPython build there:
_LANG_STEPS = """\
COPY lang/ /var/lang/
# pyenv's build names its own prefix in its RUNPATH and in sysconfig (where a
# source build looks for Python.h): a link from that prefix keeps both true.
RUN mkdir -p {prefix_parent} && ln -s /var/lang {prefix} \\
 && ln -sf python{version} /var/lang/bin/python3 \\
 && /var/lang/bin/python{version} -c "import {smoke}"
"""

# Foreign-architecture stand-ins link Debian's own interpreter there instead.
# CPython finds its prefix (/usr) through the link's target, so the standard
# library is Debian's; running it here also proves that emulation works.
_DEBIAN_LANG_STEPS = """\
RUN mkdir -p /var/lang/bin && ln -s /usr/bin/python{version} /var/lang/bin/python{version} \\
 && ln -s python{version} /var/lang/bin/python3 \\
 && /var/lang/bin/python{version} -c "import {smoke}"
"""

_RUNTIME_DOCKERFILE = """\
FROM {base}
{lang_steps}
COPY runtime/ /var/runtime/
RUN chmod 755 /var/runtime/bootstrap && mkdir -p /var/task /opt
ENV LANG=C.UTF-8 TZ=:/etc/localtime PATH={path} LD_LIBRARY_PATH={ld_library_path} \\
    LAMBDA_TASK_ROOT=/var/task LAMBDA_RUNTIME_DIR=/var/runtime
WORKDIR /var/task
ENTRYPOINT ["/var/runtime/bootstrap"]
"""

_BUILD_DOCKERFILE = """\
FROM {base}
{lang_steps}
COPY _manylinux.py /var/lang/lib/python{version}/site-packages/
ENV LANG=C.UTF-8 PATH={path}
WORKDIR /var/task
"""

# PEP 600's hook: pip in the build stand-in picks only wheels the real runtime's
# glibc can load, as it would in the real build image, not what Debian's could.
_MANYLINUX_PY = """\
# lambdakit stand-in: wheels for Lambda's glibc {glibc}, not this image's (PEP 600).
def manylinux_compatible(tag_major, tag_minor, tag_arch):
    return (tag_major, tag_minor) <= {glibc_tuple}
"""

_BUILDTOOLS_DOCKERFILE = """\
FROM {base}
RUN apt-get update \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends {packages} \\
 && apt-get clean && rm -rf /var/lib/apt/lists/* /usr/share/doc /usr/share/man
"""

# /var/runtime/bootstrap: the Runtime Interface Emulator (SAM's, or Lambda's
# own) runs it with the handler in _HANDLER.
_BOOTSTRAP = """\
#!/bin/sh
# lambdakit stand-in for Lambda's Python bootstrap (awslambdaric from PyPI).
export AWS_EXECUTION_ENV="${{AWS_EXECUTION_ENV:-AWS_Lambda_python{version}}}"
exec /var/lang/bin/python{version} /var/runtime/bootstrap.py "$@"
"""

_BOOTSTRAP_PY = """\
import os
import sys

# sys.path as Lambda sets it: function code, then the layers, then the standard
# library; the runtime's own directory last so a layer's packages win.
runtime_dir = sys.path.pop(0)
version = "%d.%d" % sys.version_info[:2]
sys.path[:0] = [
    os.environ.get("LAMBDA_TASK_ROOT", "/var/task"),
    "/opt/python",
    "/opt/python/lib/python%s/site-packages" % version,
]
sys.path.append(runtime_dir)

from awslambdaric.__main__ import main

main([sys.argv[0], sys.argv[1] if len(sys.argv) > 1 else os.environ["_HANDLER"]])
"""


@dataclass(frozen=True, kw_only=True)
class Standin:
    kind: Kind
    target: Target
    python: str  # what the interpreter is, e.g. "CPython 3.12.1"
    suite: str  # the Debian suite of its root filesystem
    # The local CPython build copied to /var/lang; None: the suite's own python.
    prefix: Path | None = None

    @property
    def image(self) -> str:
        return image_name(self.target, self.kind)

    @property
    def foreign(self) -> bool:
        """For another architecture than this machine's: built and run through qemu."""
        return self.target.arch.name != host_arch()

    @property
    def base(self) -> RootFs:
        python = self.target.version if self.prefix is None else None
        return RootFs(arch=self.target.arch, suite=self.suite, python=python)


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
        return _digest(ROOTFS_VERSION, self.suite, method, *self.packages)[:12]

    @property
    def tag(self) -> str:
        return f"lambdakit/standin-base:{self.suite}-{self.arch.name}-{self.digest}"


def image_name(t: Target, kind: Kind) -> str:
    """The official name a stand-in of this kind is tagged with."""
    return t.runtime_image if kind == "runtime" else t.build_image


@dataclass(frozen=True, kw_only=True)
class Outcome:
    image: str
    status: Literal["built", "cached", "skipped"]
    detail: str = ""
    seconds: float = 0.0


@dataclass(frozen=True, kw_only=True)
class ImageRow:
    image: str
    kind: Kind
    target: Target
    present: bool
    standin: bool
    labels: dict[str, str]


def cache_dir() -> Path:
    root = os.environ.get("LAMBDAKIT_CACHE") or Path.home() / ".cache" / "lambdakit"
    return Path(root) / "standin"


def python_prefix(version: str) -> Path | None:
    """A self-contained CPython install of this version (pyenv's), not a system /usr."""
    interpreter = find_interpreter(version)
    if interpreter is None:
        return None
    prefix = interpreter.resolve().parent.parent
    if (
        prefix in (Path("/usr"), Path("/usr/local"))
        or not (prefix / "lib" / f"python{version}" / "os.py").is_file()
    ):
        return None
    return prefix


def plan(
    runtimes: Iterable[str], kinds: Iterable[Kind] = KINDS, arches: Iterable[str] | None = None
) -> tuple[list[Standin], list[Outcome]]:
    """The stand-ins this machine can build, and why the others are skipped.

    The interpreter is a local CPython build where this machine has one of the
    target's architecture (the default arch), else the python of the Debian suite
    the catalogue names for that version (runtime image only).
    """
    standins: list[Standin] = []
    skipped: list[Outcome] = []
    for arch in arches or (host_arch(),):
        for runtime in runtimes:
            t = target(runtime, arch)
            unbuildable = _unbuildable(t, kinds)
            for kind, reason in unbuildable.items():
                skipped.append(Outcome(image=image_name(t, kind), status="skipped", detail=reason))
            kinds_left = [kind for kind in kinds if kind not in unbuildable]
            if not kinds_left:
                continue
            prefix = _local_prefix(t)
            if prefix is None:
                assert t.debian_suite is not None  # else _unbuildable named every kind
                python = f"Debian's python{t.version} ({t.debian_suite}, {t.arch.debian_arch})"
                suite = t.debian_suite
            else:
                python, suite = f"CPython {_python_version(prefix, t.version)}", LOCAL_SUITE
            standins += [
                Standin(kind=kind, target=t, prefix=prefix, python=python, suite=suite) for kind in kinds_left
            ]
    return standins, skipped


def _local_prefix(t: Target) -> Path | None:
    return python_prefix(t.version) if t.arch.name == host_arch() else None


def _unbuildable(t: Target, kinds: Iterable[Kind]) -> dict[Kind, str]:
    """The kinds of stand-in this machine cannot build for t, with the reason."""
    if _local_prefix(t) is not None:
        return {}
    if t.debian_suite is None:
        local = (
            f"no local CPython {t.version} build (pyenv install {t.version}) to copy"
            if t.arch.name == host_arch()
            else f"only this machine's architecture ({host_arch()}) has local builds to copy"
        )
        reason = f"no {t.arch.name} CPython {t.version} here: {local}, and no Debian suite ships it"
        return dict.fromkeys(kinds, f"{reason} ({debian_pythons()})")
    if "build" not in kinds:
        return {}
    if t.arch.name != host_arch():
        why = f"compiling under qemu is slow and wheels cover {t.arch.name} layers (use --backend uv)"
    else:
        why = f"a build stand-in copies a local CPython build (pyenv install {t.version}); use --backend uv"
    return {"build": f"no {t.arch.name} {t.runtime} build stand-in: {why}"}


def debian_pythons() -> str:
    """The catalogue's suites and the Python each gives: "bullseye 3.9, bookworm 3.11, ..."."""
    # A suite ships the same Pythons for every architecture: any one reads the column.
    rows = (target(runtime, DEFAULT_ARCH) for runtime in runtime_names())
    return ", ".join(f"{t.debian_suite} {t.version}" for t in rows if t.debian_suite)


def standin_command(name: str) -> str | None:
    """The command that builds the stand-in tagged `name`, if this machine can build it."""
    for t in all_targets():
        for kind in KINDS:
            if image_name(t, kind) == name and not _unbuildable(t, (kind,)):
                options = f"--runtime {t.runtime} --arch {t.arch.name} --kind {kind}"
                return f"lambdakit images build-standins {options}"
    return None


def runtime_packages(version: str) -> tuple[str, ...]:
    return RUNTIME_PACKAGES_FOR.get(version, RUNTIME_PACKAGES)


def _python_version(prefix: Path, version: str) -> str:
    argv = [
        str(prefix / "bin" / f"python{version}"),
        "-I",
        "-c",
        "import platform; print(platform.python_version())",
    ]
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout.strip()


def build_standins(
    runtimes: Iterable[str] = DEFAULT_RUNTIMES,
    *,
    kinds: Iterable[Kind] = KINDS,
    arches: Iterable[str] | None = None,
    force: bool = False,
    progress: Progress,
) -> list[Outcome]:
    """Build the missing or outdated stand-ins; an up-to-date one is left as is.

    `arches` defaults to this machine's; another needs qemu registered for Docker.
    """
    client = container.connect()
    standins, outcomes = plan(runtimes, kinds, arches)
    for standin in standins:
        started = time.perf_counter()
        base = standin.base.tag
        buildtools = f"lambdakit/standin-buildtools:{standin.suite}-{_digest(base, *BUILD_PACKAGES)[:12]}"
        dockerfile = _dockerfile(standin, base=base, buildtools=buildtools)
        recipe = _digest(
            RECIPE_VERSION,
            dockerfile,
            standin.python,
            *runtime_packages(standin.target.version),
            _BOOTSTRAP,
            _BOOTSTRAP_PY,
            _manylinux_py(standin.target),
        )
        existing = container.image_facts(client, standin.image)
        if existing is not None and not existing.standin:
            outcomes.append(
                Outcome(image=standin.image, status="skipped", detail="the official image is present")
            )
            continue
        if (
            existing is not None
            and existing.labels.get(f"{container.STANDIN_LABEL}.recipe") == recipe
            and not force
        ):
            outcomes.append(Outcome(image=standin.image, status="cached", detail=standin.python))
            continue
        if standin.foreign:
            emulation = container.emulation_availability(client, standin.target.arch.docker_platform)
            if not emulation.ok:
                outcomes.append(Outcome(image=standin.image, status="skipped", detail=emulation.reason))
                continue
        glibc = _ensure_base(client, standin.base, progress)
        progress.step("stand-in", f"{standin.image} ({standin.python} on {_os_facts(standin, glibc)})")
        if standin.kind == "build":
            _ensure_buildtools(client, base, buildtools, progress)
        with _context(standin, dockerfile, progress) as context:
            image_id, _ = container.build_image(
                client,
                context=context,
                tag=standin.image,
                labels=_labels(standin, recipe, glibc),
                docker_platform=standin.target.arch.docker_platform,
                on_line=progress.output,
            )
        if existing is not None and existing.id != image_id:
            # The outdated stand-in is now untagged; its layers would only take space.
            with contextlib.suppress(docker.errors.APIError):
                client.images.remove(existing.id)
        seconds = time.perf_counter() - started
        outcomes.append(Outcome(image=standin.image, status="built", detail=standin.python, seconds=seconds))
    return outcomes


def list_images() -> list[ImageRow]:
    """Every runtime and build image lambdakit can use, whether present, and whether a stand-in."""
    client = container.connect()
    rows = []
    for t in all_targets():
        for kind in KINDS:
            facts = container.image_facts(client, image_name(t, kind))
            rows.append(
                ImageRow(
                    image=image_name(t, kind),
                    kind=kind,
                    target=t,
                    present=facts is not None,
                    standin=facts is not None and facts.standin,
                    labels=dict(facts.labels) if facts is not None else {},
                )
            )
    return rows


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def _dockerfile(standin: Standin, *, base: str, buildtools: str) -> str:
    if standin.prefix is None:
        lang_steps = _DEBIAN_LANG_STEPS.format(version=standin.target.version, smoke=SMOKE_IMPORTS)
    else:
        lang_steps = _LANG_STEPS.format(
            prefix=standin.prefix,
            prefix_parent=standin.prefix.parent,
            version=standin.target.version,
            smoke=SMOKE_IMPORTS,
        )
    if standin.kind == "runtime":
        return _RUNTIME_DOCKERFILE.format(
            base=base, lang_steps=lang_steps, path=_LAMBDA_PATH, ld_library_path=_LAMBDA_LD_LIBRARY_PATH
        )
    return _BUILD_DOCKERFILE.format(
        base=buildtools, lang_steps=lang_steps, path=_LAMBDA_PATH, version=standin.target.version
    )


def _manylinux_py(t: Target) -> str:
    return _MANYLINUX_PY.format(glibc=t.glibc_text, glibc_tuple=t.glibc)


def _labels(standin: Standin, recipe: str, glibc: str) -> dict[str, str]:
    t = standin.target
    prefix = container.STANDIN_LABEL
    labels = {
        prefix: "true",
        f"{prefix}.kind": standin.kind,
        f"{prefix}.fakes": standin.image,
        f"{prefix}.os": _os_facts(standin, glibc),
        f"{prefix}.real-os": f"{t.os_name}, glibc {t.glibc_text}",
        f"{prefix}.python": standin.python + (f", copied from {standin.prefix}" if standin.prefix else ""),
        f"{prefix}.recipe": recipe,
    }
    if standin.foreign:
        labels[f"{prefix}.emulated"] = f"{t.arch.name} under qemu-user-static (built on {host_arch()})"
    if standin.kind == "build":
        labels[f"{prefix}.package-manager"] = f"apt (the real image has {t.package_manager})"
        labels[f"{prefix}.wheels"] = f"pip picks manylinux wheels up to glibc {t.glibc_text} (PEP 600)"
    return labels


# --- base images ------------------------------------------------------------------------------


def _os_facts(standin: Standin, glibc: str) -> str:
    """What the stand-in runs, for its label and for results: "Debian 12 (bookworm), glibc 2.36"."""
    facts = f"{debian_suite_name(standin.suite)}, glibc {glibc}"
    return f"{facts}, {standin.target.arch.name} under qemu" if standin.foreign else facts


def _ensure_base(client: docker.DockerClient, base: RootFs, progress: Progress) -> str:
    """The base image made if missing; returns the glibc version its root filesystem has."""
    facts = container.image_facts(client, base.tag)
    if facts is None or GLIBC_LABEL not in facts.labels:
        tarball, glibc = _rootfs_tarball(base, progress)
        progress.step("stand-in", f"docker import {tarball.name} as {base.tag}")
        container.import_rootfs(
            client, tarball, base.tag, base.arch.docker_platform, labels={GLIBC_LABEL: glibc}
        )
        return glibc
    return facts.labels[GLIBC_LABEL]


def _ensure_buildtools(client: docker.DockerClient, base: str, tag: str, progress: Progress) -> None:
    if container.image_facts(client, tag) is not None:
        return
    progress.step("stand-in", f"{tag}: apt-get install {' '.join(BUILD_PACKAGES)}")
    dockerfile = _BUILDTOOLS_DOCKERFILE.format(base=base, packages=" ".join(BUILD_PACKAGES))
    with tempfile.TemporaryFile() as fileobj:
        with tarfile.open(fileobj=fileobj, mode="w") as tar:
            _add_text(tar, "Dockerfile", dockerfile)
        fileobj.seek(0)
        container.build_image(client, context=fileobj, tag=tag, on_line=progress.output)


def _rootfs_tarball(base: RootFs, progress: Progress) -> tuple[Path, str]:
    """A minimal Debian root filesystem as a tar, made once with debootstrap and cached, and its glibc.

    Under a copied CPython build the system is installed whole (the build stand-in adds
    packages with apt). A suite's python is only unpacked: debootstrap's first stage
    fetches and unpacks the base system on this machine, then the interpreter's packages
    are unpacked beside it. No package's maintainer scripts run: under qemu they take
    minutes (byte-compiling the standard library), and an interpreter run needs none.
    """
    cache = cache_dir()
    tarball = cache / f"{base.suite}-{base.arch.name}-minbase-{base.digest}.tar"
    glibc_file = tarball.with_suffix(".glibc")
    if tarball.is_file() and glibc_file.is_file():
        return tarball, glibc_file.read_text().strip()
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
        _run(argv, progress, step=f"debootstrap {base.suite} {base.arch.name} (once)")
        glibc = _unpack_downloaded(root, progress) if base.python else _glibc_of(root)
        for rel in _ROOTFS_TRIM:
            shutil.rmtree(root / rel, ignore_errors=True)
        partial = tarball.with_suffix(".partial")
        _run(
            ["tar", "--numeric-owner", "-C", str(root), "-cf", str(partial), "."],
            progress,
            step="pack rootfs",
        )
        glibc_file.write_text(glibc + "\n")
        partial.rename(tarball)
    return tarball, glibc


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


def _run(argv: list[str], progress: Progress, *, step: str) -> None:
    progress.step("stand-in", step)
    progress.output("$ " + " ".join(argv))
    code, tail = run_streamed(argv, progress, keep=3)
    if code != 0:
        raise EnvironmentProblem(f"{argv[0]} failed ({step}): " + " | ".join(tail), step="stand-in")


# --- build context ----------------------------------------------------------------------------


@contextmanager
def _context(standin: Standin, dockerfile: str, progress: Progress) -> Iterator[IO[bytes]]:
    """The build context as a tar file: Dockerfile, the interpreter tree, the runtime's bootstrap."""
    with tempfile.TemporaryDirectory(prefix="standin-") as scratch, tempfile.TemporaryFile() as fileobj:
        with tarfile.open(fileobj=fileobj, mode="w") as tar:
            _add_text(tar, "Dockerfile", dockerfile)
            if standin.prefix is not None:
                tar.add(standin.prefix, arcname="lang", filter=interpreter_filter(standin))
            if standin.kind == "runtime":
                runtime = _runtime_dir(standin, Path(scratch), progress)
                tar.add(runtime, arcname="runtime", filter=_owned_by_root)
            else:
                _add_text(tar, "_manylinux.py", _manylinux_py(standin.target))
        fileobj.seek(0)
        yield fileobj


def _runtime_dir(standin: Standin, scratch: Path, progress: Progress) -> Path:
    """/var/runtime: awslambdaric for this interpreter, and the bootstrap that starts it."""
    runtime = scratch / "runtime"
    t = standin.target
    version = t.version
    if standin.prefix is not None:
        python = [str(standin.prefix / "bin" / f"python{version}"), "-I"]
        wheels: list[str] = []
    else:
        # The suite's interpreter runs only inside the image (under qemu for another
        # architecture): pip picks the wheels for it (awslambdaric has them) from this one.
        python = [sys.executable]
        wheels = ["--only-binary=:all:", "--python-version", version, "--implementation", "cp"]
        wheels += ["--abi", t.python_tag, *(arg for tag in t.platform_tags for arg in ("--platform", tag))]
    pip = [*python, "-m", "pip", "install", "--quiet", "--no-compile", *wheels, "--target", str(runtime)]
    packages = runtime_packages(version)
    _run([*pip, *packages], progress, step=f"pip install {' '.join(packages)} for /var/runtime")
    (runtime / "bootstrap").write_text(_BOOTSTRAP.format(version=version))
    (runtime / "bootstrap").chmod(0o755)
    (runtime / "bootstrap.py").write_text(_BOOTSTRAP_PY)
    return runtime


def interpreter_filter(standin: Standin) -> Callable[[tarfile.TarInfo], tarfile.TarInfo | None]:
    stdlib = f"lang/lib/python{standin.target.version}/"

    def keep(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        name = info.name
        top, _, rest = name.removeprefix(stdlib).partition("/") if name.startswith(stdlib) else ("", "", "")
        if top in _STDLIB_SKIP:
            return None
        # The local build may carry a developer's packages; only pip belongs in an image.
        if top == "site-packages" and rest and not _KEEP_SITE_PACKAGE.match(rest):
            return None
        if _SKIP_FILE.search(name.rsplit("/", 1)[-1]) or name.startswith("lang/share/"):
            return None
        return _owned_by_root(info)

    return keep


def _owned_by_root(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def _add_text(tar: tarfile.TarFile, name: str, text: str) -> None:
    data = text.encode()
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o644, 0
    tar.addfile(info, io.BytesIO(data))
