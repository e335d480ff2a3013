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
import io
import re
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

from builder import DATA_DIR
from builder.docker import container
from builder.docker.rootfs import LOCAL_SUITE, RootFs, content_digest, ensure_base_image, run_step
from builder.host import find_interpreter, host_arch
from builder.layout import LD_LIBRARY_PATH, OPT_DIR, PATH, PYTHON_DIR, RUNTIME_DIR, TASK_ROOT
from builder.progress import Progress
from builder.runtimes import DEFAULT_ARCH, Target, all_targets, debian_suite_name, runtime_names, target

Kind = Literal["runtime", "build"]
KINDS: tuple[Kind, ...] = ("runtime", "build")
DEFAULT_RUNTIMES = ("python3.11", "python3.12")

# Bump when the images change in a way the recipe digest does not see.
RECIPE_VERSION = "4"
# /var/runtime of the real images: the runtime interface client, and the AWS SDK
# that AWS ships there (code such as the task worker imports boto3 from it).
RUNTIME_PACKAGES = ("awslambdaric==4.2.2", "boto3==1.43.108")
# The newest releases that still support older Pythons.
RUNTIME_PACKAGES_FOR = {"3.9": ("awslambdaric==4.0.4", "boto3==1.42.97")}

# What a SAM build image offers a source build: a compiler, libc headers, and
# libpq headers with pg_config (on Amazon Linux the Dockerfile installs libpq-devel).
BUILD_PACKAGES = ("gcc", "libc6-dev", "libpq-dev")
# Modules whose import proves the copied interpreter found its shared libraries.
SMOKE_IMPORTS = "ssl, ctypes, sqlite3, bz2, lzma, zlib, decimal, hashlib, uuid, readline, pyexpat"

# Parts of a CPython install no Lambda function uses, left out to keep images small.
_STDLIB_SKIP = {"test", "idlelib", "tkinter", "turtledemo", "ensurepip"}
_KEEP_SITE_PACKAGE = re.compile(r"pip(/|-[^/]*\.dist-info(/|$)|$)")
_SKIP_FILE = re.compile(r"\.opt-[12]\.pyc$|^libpython.*\.a$|^_tkinter\..*\.so$")

# Lambda's PATH, as the official runtime images set it.
_LAMBDA_PATH = ":".join(PATH)
# What the templates below name of Lambda's filesystem, from its one model (layout.py).
_LAYOUT = {"task_root": TASK_ROOT, "runtime_dir": RUNTIME_DIR, "opt_dir": OPT_DIR, "python_dir": PYTHON_DIR}


def _template(name: str) -> str:
    """A recipe or script of builder/data/standin/: a str.format template."""
    return (DATA_DIR / "standin" / f"{name}.in").read_text(encoding="utf-8")


# The interpreter goes to /var/lang, as in the official images. Native stand-ins copy a
# local CPython build there; foreign-architecture ones link Debian's own interpreter
# instead (CPython finds its prefix, /usr, through the link's target, so the standard
# library is Debian's; running it there also proves that emulation works).
_LANG_STEPS = _template("lang-copied.Dockerfile")
_DEBIAN_LANG_STEPS = _template("lang-debian.Dockerfile")
_RUNTIME_DOCKERFILE = _template("runtime.Dockerfile")
_BUILD_DOCKERFILE = _template("build.Dockerfile")
_BUILDTOOLS_DOCKERFILE = _template("buildtools.Dockerfile")
# PEP 600's hook: pip in the build stand-in picks only wheels the real runtime's
# glibc can load, as it would in the real build image, not what Debian's could.
_MANYLINUX_PY = _template("_manylinux.py")
# /var/runtime/bootstrap: the Runtime Interface Emulator (SAM's, or Lambda's own) runs
# it with the handler in _HANDLER. It spells out layout.py's RUNTIME_DIR itself: its
# template text is part of every recipe digest, and filling it in would rebuild them all.
_BOOTSTRAP = _template("bootstrap")
_BOOTSTRAP_PY = _template("bootstrap.py").format_map(_LAYOUT)


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
        buildtools = _buildtools_tag(standin)
        dockerfile = _dockerfile(standin, base=base, buildtools=buildtools)
        recipe = _recipe(standin, dockerfile)
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
        glibc = ensure_base_image(client, standin.base, progress)
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


def _recipe(standin: Standin, dockerfile: str) -> str:
    """The digest a stand-in's label carries: the same recipe means the same image, left as is."""
    return content_digest(
        RECIPE_VERSION,
        dockerfile,
        standin.python,
        *runtime_packages(standin.target.version),
        _BOOTSTRAP,
        _BOOTSTRAP_PY,
        _manylinux_py(standin.target),
    )


def _buildtools_tag(standin: Standin) -> str:
    """The base image with BUILD_PACKAGES installed, under the build stand-ins."""
    packages = content_digest(standin.base.tag, *BUILD_PACKAGES)[:12]
    return f"lambdakit/standin-buildtools:{standin.suite}-{packages}"


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
        ld_library_path = ":".join(LD_LIBRARY_PATH)
        return _RUNTIME_DOCKERFILE.format(
            base=base, lang_steps=lang_steps, path=_LAMBDA_PATH, ld_library_path=ld_library_path, **_LAYOUT
        )
    return _BUILD_DOCKERFILE.format(
        base=buildtools, lang_steps=lang_steps, path=_LAMBDA_PATH, version=standin.target.version, **_LAYOUT
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


def _os_facts(standin: Standin, glibc: str) -> str:
    """What the stand-in runs, for its label and for results: "Debian 12 (bookworm), glibc 2.36"."""
    facts = f"{debian_suite_name(standin.suite)}, glibc {glibc}"
    return f"{facts}, {standin.target.arch.name} under qemu" if standin.foreign else facts


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
    run_step([*pip, *packages], progress, step=f"pip install {' '.join(packages)} for {RUNTIME_DIR}")
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
