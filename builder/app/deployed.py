"""validate --deployed: a function as Lambda stores it, read back and checked as validate --function checks.

read_function asks the Lambda API what the function is (runtime, architecture, handler,
its code and layer versions, in order); fetch_artifact downloads each zip through the
presigned location Lambda hands out, cached by its sha256 so that a second look
downloads nothing; check_deployed assembles them as Lambda does (the code in /var/task,
the layers into /opt in order, a later layer's file replacing an earlier one's), says
which files a layer overwrote, and runs validate's own checks on the result, each
problem naming the artifact its file came from.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import filecmp
import hashlib
import os
import posixpath
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import botocore.exceptions

from builder import runtimes
from builder.app.destination import Destination
from builder.app.plan import configured_region
from builder.app.samconfig import SamEnvironment
from builder.audit.rules import UNZIPPED_LIMIT
from builder.errors import EnvironmentProblem, UsageError
from builder.host import cache_root
from builder.layout import PYTHON_DIR, sys_path_dirs
from builder.problems import Problem
from builder.report import ValidationReport, Verdict
from builder.validate import archive_problems, extract_layer_zip, function_tree, validate_tree
from builder.verify import ImportCheckChoice

DEPLOYED_SCHEMA = 1
DOWNLOAD_TIMEOUT_S = 120
PACKAGE_SOURCE = "function package"
# The problems whose path is the function's Handler (module.function), not a file.
HANDLER_CODES = frozenset({"handler-not-found", "handler-unproven"})


@dataclass(frozen=True, kw_only=True)
class StoredZip:
    """A zip Lambda keeps (a function's code, a layer version): its sha256 (hex) and where to get it."""

    sha256: str
    location: str


@dataclass(frozen=True, kw_only=True)
class DeployedLayer:
    arn: str
    name: str
    version: int
    content: StoredZip

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"

    @property
    def label(self) -> str:
        """As a problem's source names it."""
        return f"layer {self.ref}"


@dataclass(frozen=True, kw_only=True)
class DeployedFunction:
    name: str
    runtime: str
    arch: str
    handler: str
    code: StoredZip
    layers: tuple[DeployedLayer, ...]


@dataclass(frozen=True, kw_only=True)
class Fetched:
    path: Path
    cached: bool  # found in the cache: nothing was downloaded


@dataclass(frozen=True, kw_only=True)
class Overwrite:
    """A file of an earlier layer that a later one replaced in /opt; the layers as NAME:VERSION."""

    path: str
    overwritten: str
    by: str

    def to_dict(self) -> dict[str, str]:
        return dataclasses.asdict(self)


@dataclass(frozen=True, kw_only=True)
class DeployedReport:
    function: DeployedFunction
    code_cached: bool
    layers_cached: tuple[bool, ...]  # one per function.layers
    overwrites: tuple[Overwrite, ...]
    report: ValidationReport

    @property
    def verdict(self) -> Verdict:
        return self.report.verdict

    def to_dict(self) -> dict[str, object]:
        function = self.function
        return {
            "schema": DEPLOYED_SCHEMA,
            "ok": self.report.ok,
            "verdict": self.verdict,
            "function": {
                "name": function.name,
                "runtime": function.runtime,
                "arch": function.arch,
                "handler": function.handler,
                "code_sha256": function.code.sha256,
                "cached": self.code_cached,
            },
            "layers": [
                {
                    "arn": layer.arn,
                    "name": layer.name,
                    "version": layer.version,
                    "code_sha256": layer.content.sha256,
                    "cached": cached,
                }
                for layer, cached in zip(function.layers, self.layers_cached, strict=True)
            ],
            "overwrites": [o.to_dict() for o in self.overwrites],
            "report": self.report.to_dict(),
        }


def cache_dir() -> Path:
    """Where downloaded zips are kept, named by their sha256 (LAMBDAKIT_CACHE as for the stand-ins)."""
    return cache_root() / "deployed"


def lambda_region(destination: Destination, *, region: str | None, environment: SamEnvironment | None) -> str:
    """--region, else the samconfig environment's (deploy's rule), else LocalStack's or AWS_REGION."""
    found = region or configured_region(destination, environment)
    if not found:
        raise UsageError(
            "no region for --target aws", hint="pass --region, --env (samconfig.toml) or AWS_REGION"
        )
    return found


def _hex_sha256(lambda_sha256: object, what: str) -> str:
    """Lambda's CodeSha256 (base64 of the digest) as hex, the way lambdakit writes sha256 elsewhere."""
    try:
        digest = base64.b64decode(str(lambda_sha256), validate=True)
    except (binascii.Error, ValueError) as err:
        raise EnvironmentProblem(f"{what}: Lambda's CodeSha256 {lambda_sha256!r} is not base64") from err
    if len(digest) != hashlib.sha256().digest_size:
        raise EnvironmentProblem(f"{what}: Lambda's CodeSha256 {lambda_sha256!r} is not a sha256")
    return digest.hex()


# What the service says of a name it cannot take (too long, a character Lambda refuses).
INVALID_NAME_CODES = frozenset({"ValidationException", "InvalidParameterValueException"})


def _call(what: str, call: Any, *, missing_hint: str, **kwargs: Any) -> dict[str, Any]:
    """One Lambda API call; what the service or the connection refuses becomes lambdakit's error."""
    try:
        answer: dict[str, Any] = call(**kwargs)
    except botocore.exceptions.ParamValidationError as err:
        raise UsageError(f"{what}: {err}", hint="give the function's name or ARN") from err
    except botocore.exceptions.ClientError as err:
        code = err.response.get("Error", {}).get("Code", "")
        if code == "ResourceNotFoundException":
            raise UsageError(f"{what}: not found ({err})", hint=missing_hint) from err
        if code in INVALID_NAME_CODES:
            raise UsageError(f"{what}: {err}", hint="give the function's name or ARN") from err
        raise EnvironmentProblem(
            f"{what}: {err}", hint="check the credentials' permissions (lambda:GetFunction, GetLayerVersion)"
        ) from err
    except botocore.exceptions.BotoCoreError as err:
        raise EnvironmentProblem(
            f"{what}: {err}", hint="check the endpoint, the region and AWS credentials (AWS_PROFILE)"
        ) from err
    return answer


def read_function(lambda_client: Any, name: str) -> DeployedFunction:
    """The function's configuration and its layer versions, in the order Lambda applies them."""
    found = _call(
        f"function {name}",
        lambda_client.get_function,
        missing_hint="check the name and the region (--region, --env); aws lambda list-functions lists them",
        FunctionName=name,
    )
    config = found.get("Configuration", {})
    if config.get("PackageType", "Zip") != "Zip":
        raise UsageError(
            f"{name} is not a zip function (PackageType {config.get('PackageType')}): there is no "
            "package and no layers to check",
            hint="validate the image's contents where it is built",
        )
    runtime = str(config.get("Runtime", ""))
    if runtime not in runtimes.runtime_names():
        raise UsageError(
            f"{name} runs on {runtime or 'no runtime'}: lambdakit has facts for Python runtimes only "
            f"({', '.join(runtimes.runtime_names())})",
            hint="validate --deployed checks Python functions",
        )
    architectures = config.get("Architectures") or ["x86_64"]
    if architectures[0] not in runtimes.ARCHES:
        raise UsageError(
            f"{name} is for {architectures[0]}: lambdakit knows {', '.join(runtimes.ARCHES)}",
            hint="validate --deployed checks functions for Lambda's architectures",
        )
    location = found.get("Code", {}).get("Location")
    if not location:
        raise EnvironmentProblem(f"function {name}: Lambda gave no location to download its code from")
    layers = tuple(_read_layer(lambda_client, str(layer["Arn"])) for layer in config.get("Layers", []))
    return DeployedFunction(
        name=str(config.get("FunctionName", name)),
        runtime=runtime,
        arch=str(architectures[0]),
        handler=str(config.get("Handler", "")),
        code=StoredZip(sha256=_hex_sha256(config.get("CodeSha256"), f"function {name}"), location=location),
        layers=layers,
    )


def _read_layer(lambda_client: Any, arn: str) -> DeployedLayer:
    # arn:aws:lambda:REGION:ACCOUNT:layer:NAME:VERSION. GetLayerVersion takes the layer's ARN
    # as its name (another account's layer too), as GetLayerVersionByArn takes the whole ARN.
    layer_arn, _, version = arn.rpartition(":")
    parts = layer_arn.split(":")
    if len(parts) != 7 or parts[5] != "layer" or not version.isdigit():
        raise EnvironmentProblem(f"Lambda lists a layer {arn!r} that is not a layer version ARN")
    found = _call(
        f"layer {arn}",
        lambda_client.get_layer_version,
        # Lambda keeps running a function on a layer version deleted since, but hands it out no more.
        missing_hint="the layer version was deleted (or is another account's and not shared): publish "
        "it again and update the function to use it",
        LayerName=layer_arn,
        VersionNumber=int(version),
    )
    content = found.get("Content", {})
    location = content.get("Location")
    if not location:
        raise EnvironmentProblem(f"layer {arn}: Lambda gave no location to download it from")
    return DeployedLayer(
        arn=arn,
        name=parts[6],
        version=int(version),
        content=StoredZip(sha256=_hex_sha256(content.get("CodeSha256"), f"layer {arn}"), location=location),
    )


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_artifact(stored: StoredZip, cache: Path, *, what: str) -> Fetched:
    """The zip from the cache, or downloaded, checked against its sha256, then cached.

    A download whose hash is not the one Lambda recorded is never cached; a cached file
    that no longer has its hash (a disk error, a hand edit) is downloaded again.
    """
    cached = cache / f"{stored.sha256}.zip"
    if cached.is_file() and _file_sha256(cached) == stored.sha256:
        return Fetched(path=cached, cached=True)
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=cache, prefix=".download-", suffix=".zip", delete=False) as out:
        partial = Path(out.name)
        try:
            digest = _download(stored.location, out, what=what)
        except BaseException:
            partial.unlink()
            raise
    if digest != stored.sha256:
        partial.unlink()
        raise EnvironmentProblem(
            f"{what}: what was downloaded has sha256 {digest}, Lambda records {stored.sha256}",
            hint="download it again; if it persists, the location does not serve this version",
            step="download",
        )
    os.replace(partial, cached)
    return Fetched(path=cached, cached=False)


def _download(location: str, out: Any, *, what: str) -> str:
    if urllib.parse.urlsplit(location).scheme not in ("http", "https"):
        raise EnvironmentProblem(
            f"{what}: cannot download it from Lambda's location ({location!r} is not an http(s) address)",
            hint="lambdakit reads only what Lambda serves over http(s): check --target and --endpoint-url",
            step="download",
        )
    digest = hashlib.sha256()
    written = 0
    try:
        with urllib.request.urlopen(location, timeout=DOWNLOAD_TIMEOUT_S) as response:
            while chunk := response.read(1 << 20):
                written += len(chunk)
                if written > UNZIPPED_LIMIT:
                    raise EnvironmentProblem(
                        f"{what}: the download exceeds {UNZIPPED_LIMIT} bytes, more than Lambda accepts",
                        hint="check the location",
                        step="download",
                    )
                digest.update(chunk)
                out.write(chunk)
    except (urllib.error.URLError, OSError, ValueError) as err:
        raise EnvironmentProblem(
            f"{what}: cannot download it from Lambda's location ({err})",
            hint="the presigned location expires after minutes: run again; check the network or endpoint",
            step="download",
        ) from err
    return digest.hexdigest()


def validate_deployed(
    lambda_client: Any,
    name: str,
    *,
    cache: Path,
    import_check: ImportCheckChoice = "auto",
    localstack_url: str | None = None,
) -> DeployedReport:
    """localstack_url: LocalStack's endpoint, whose host its download locations are rewritten to:
    it names them by LOCALSTACK_HOST, which need not resolve from here."""
    function = read_function(lambda_client, name)
    if localstack_url is not None:
        function = _at_endpoint(function, localstack_url)
    code = fetch_artifact(function.code, cache, what=f"function {function.name}'s code")
    layers = [fetch_artifact(layer.content, cache, what=layer.label) for layer in function.layers]
    report, overwrites = check_deployed(function, code.path, [f.path for f in layers], import_check)
    return DeployedReport(
        function=function,
        code_cached=code.cached,
        layers_cached=tuple(f.cached for f in layers),
        overwrites=overwrites,
        report=report,
    )


def _at_endpoint(function: DeployedFunction, url: str) -> DeployedFunction:
    endpoint = urllib.parse.urlsplit(url)

    def moved(stored: StoredZip) -> StoredZip:
        location = urllib.parse.urlsplit(stored.location)._replace(
            scheme=endpoint.scheme, netloc=endpoint.netloc
        )
        return dataclasses.replace(stored, location=location.geturl())

    layers = tuple(dataclasses.replace(layer, content=moved(layer.content)) for layer in function.layers)
    return dataclasses.replace(function, code=moved(function.code), layers=layers)


def check_deployed(
    function: DeployedFunction,
    code_zip: Path,
    layer_zips: Sequence[Path],
    import_check: ImportCheckChoice,
) -> tuple[ValidationReport, tuple[Overwrite, ...]]:
    """validate --function's checks on the code and layers as Lambda assembles them, with provenance."""
    target = runtimes.target(function.runtime, function.arch)
    labels = [layer.label for layer in function.layers]
    members = [_zip_files(path) for path in layer_zips]
    overwrites = _overwrites([layer.ref for layer in function.layers], members)
    with tempfile.TemporaryDirectory(prefix="lambdakit-deployed-") as scratch:
        package = Path(scratch)
        unpacked = [
            dataclasses.replace(p, source=PACKAGE_SOURCE) for p in extract_layer_zip(code_zip, package)
        ]
        with function_tree(package, layer_zips, layer_sources=labels) as view:
            origins = _origins(view.tree, package, labels, members)
            search = [d.relative_to(view.tree).as_posix() for d in sys_path_dirs(view.tree, target)]
            report = validate_tree(
                view.tree,
                target,
                extra=(*unpacked, *(_overwrite_problem(o) for o in overwrites), *view.problems),
                import_check=import_check,
                handler=function.handler,
            )
    problems = tuple(
        p if p.source else dataclasses.replace(p, source=_source(p, origins, search)) for p in report.problems
    )
    return dataclasses.replace(report, problems=problems), overwrites


def _zip_files(path: Path) -> list[str]:
    """A layer zip's files (not folders), once each and by the path they land on; none for a zip the
    safe extractor refuses (a bad-archive problem says why), since none of it is unpacked."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            if archive_problems(members):
                return []
            return sorted({posixpath.normpath(info.filename) for info in members if not info.is_dir()})
    except (zipfile.BadZipFile, OSError):
        return []


def _overwrites(refs: list[str], members: list[list[str]]) -> tuple[Overwrite, ...]:
    last_writer: dict[str, str] = {}
    found = []
    for ref, names in zip(refs, members, strict=True):
        for name in names:
            if name in last_writer:
                found.append(Overwrite(path=name, overwritten=last_writer[name], by=ref))
            last_writer[name] = ref
    return tuple(found)


def _overwrite_problem(overwrite: Overwrite) -> Problem:
    return Problem(
        code="layer-overwrite",
        path=overwrite.path,
        message=f"layer {overwrite.by} replaces {overwrite.path} of layer {overwrite.overwritten} in "
        f"/opt: {overwrite.overwritten}'s copy is never seen",
        hint="make sure the later layer's copy is the one both need, or drop the file from one layer",
        severity="warning",
        source=f"layer {overwrite.by}",
    )


def _origins(view: Path, package: Path, labels: list[str], members: list[list[str]]) -> dict[str, str]:
    """Each file of the assembled view -> the artifact it came from: the package (under python/,
    unless a layer's regular package hid it) or the last layer that holds it."""
    last_layer = {name: label for label, names in zip(labels, members, strict=True) for name in names}
    origins = {}
    for path in view.rglob("*"):
        if path.is_dir() and not path.is_symlink():
            continue
        rel = path.relative_to(view).as_posix()
        own = package / rel.removeprefix(f"{PYTHON_DIR}/")
        if rel.startswith(f"{PYTHON_DIR}/") and os.path.lexists(own) and _same_file(path, own):
            origins[rel] = PACKAGE_SOURCE
        elif rel in last_layer:
            origins[rel] = last_layer[rel]
    return origins


def _same_file(a: Path, b: Path) -> bool:
    if a.is_symlink() or b.is_symlink():
        return a.is_symlink() and b.is_symlink() and os.readlink(a) == os.readlink(b)
    # Hard-linked into the view, or copied where linking failed.
    return os.path.samefile(a, b) or filecmp.cmp(a, b, shallow=False)


def _source(problem: Problem, origins: dict[str, str], search: list[str]) -> str:
    """Where the problem's file came from; a module (import-failed) or a Handler is looked up on
    the view's sys.path, first directory first. "" when nothing one artifact holds is concerned."""
    if problem.code == "import-failed" or problem.code in HANDLER_CODES:
        module = problem.path.rpartition(".")[0] if problem.code in HANDLER_CODES else problem.path
        stem = module.replace(".", "/")
        for directory in search:
            found = _sources_under(f"{directory}/{stem}", origins)
            if found:
                return found
        return ""
    if problem.path in origins:
        return origins[problem.path]
    # A layer that could not be laid (bad-archive, bad-layout) was named by function_tree already.
    return _sources_under(problem.path, origins)


def _sources_under(stem: str, origins: dict[str, str]) -> str:
    """The artifacts holding the module or folder `stem` (stem.py, stem.<tag>.so, stem/...)."""
    if stem in ("", "."):
        return ""
    holders = dict.fromkeys(
        origin
        for rel, origin in origins.items()
        if rel == f"{stem}.py"
        or rel.startswith(f"{stem}/")
        or (rel.startswith(f"{stem}.") and rel.endswith(".so"))
    )
    return ", ".join(holders)
