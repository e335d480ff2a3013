"""publish-layer: a layer build-layer published (OUT/NAME) as a Lambda layer version, in each region asked.

The typed manifest decides whether the layer may go out at all (an invalid layer never does, one
whose imports were not checked only when asked), and its zip must still be the one it records.
Then, per region: when the latest version already holds this zip for this runtime and
architecture nothing is published; otherwise a new version is, straight in the request or, over
Lambda's direct-upload limit, through S3.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import botocore.exceptions

from builder.app.deploy import Clients, aws_clients
from builder.app.destination import DEFAULT_LOCALSTACK_URL, Destination
from builder.app.localstack_info import (
    Fetch,
    LocalStackInfo,
    detect_localstack,
    fetch_json,
)
from builder.app.plan import configured_region
from builder.app.samconfig import read_samconfig
from builder.audit.rules import ZIPPED_LIMIT
from builder.errors import EnvironmentProblem, InvalidLayer, UsageError
from builder.manifest import Manifest, read_manifest
from builder.progress import Progress
from builder.store import DEFAULT_OUT, MANIFEST, check_layer_name

SCHEMA = 1
# Lambda refuses a request body over 69905067 bytes ("Request must be smaller than 69905067
# bytes"): its 50 MiB direct-upload quota once base64-encoded. The zip travels base64 inside a JSON
# body beside the layer's name, description and compatibility, which stay far under ENVELOPE_BYTES.
REQUEST_LIMIT = -(-ZIPPED_LIMIT * 4 // 3)
ENVELOPE_BYTES = 4096
DIRECT_UPLOAD_LIMIT = (REQUEST_LIMIT - ENVELOPE_BYTES) * 3 // 4
# The zip's sha256 as publish-layer writes it into a version's description.
DESCRIBED_SHA256 = re.compile(r"\bsha256:([0-9a-f]{64})\b")
# The verdicts build-layer records that may be published only with --allow-unverified.
UNPROVEN = frozenset({"not-verified", "unvalidated"})

PublishStatus = Literal["published", "up-to-date"]
Upload = Literal["direct", "s3"]


@dataclass(frozen=True, kw_only=True)
class PublishOptions:
    name: str  # the built layer: OUT/NAME
    destination: Destination
    regions: tuple[str, ...] = ()  # () : the samconfig environment's region, else the destination's default
    config_env: str | None = None  # samconfig.toml environment whose region is the default
    project: Path = Path()  # where samconfig.toml is
    out: Path = DEFAULT_OUT
    layer_name: str | None = None  # the Lambda layer's name; None: name
    endpoint_url: str = DEFAULT_LOCALSTACK_URL
    allow_unverified: bool = False  # publish a layer whose imports were not checked (or not validated)
    s3_bucket: str | None = None  # None: lambdakit-layers-<account>-<region>, created when missing
    direct_limit: int = DIRECT_UPLOAD_LIMIT  # bytes; a larger zip goes through S3


@dataclass(frozen=True, kw_only=True)
class RegionOutcome:
    region: str
    arn: str  # the layer version's ARN
    version: int
    status: PublishStatus
    via: Upload | None  # None: nothing was uploaded (up to date)


@dataclass(frozen=True, kw_only=True)
class PublishResult:
    layer: str  # the Lambda layer's name
    sha256: str
    runtime: str
    arch: str
    verdict: str  # the build's, from layer.json
    published: bool  # False: not proven, and --allow-unverified was not given; nothing was sent
    regions: tuple[RegionOutcome, ...]

    def to_dict(self) -> dict[str, object]:
        return {
            "schema": SCHEMA,
            "ok": self.published,
            "layer": self.layer,
            "sha256": self.sha256,
            "runtime": self.runtime,
            "arch": self.arch,
            "verdict": self.verdict,
            "regions": [asdict(outcome) for outcome in self.regions],
        }


@dataclass(frozen=True, kw_only=True)
class BuiltLayer:
    manifest: Manifest
    data: bytes  # the zip, checked against the manifest's sha256

    @property
    def sha256(self) -> str:
        return self.manifest.zip.sha256

    @property
    def description(self) -> str:
        return f"lambdakit sha256:{self.sha256} {self.manifest.runtime} {self.manifest.arch}"

    @property
    def code_sha256(self) -> str:
        """Lambda's CodeSha256: the zip's sha256 digest, base64."""
        return base64.b64encode(bytes.fromhex(self.sha256)).decode()


def read_built_layer(out: Path, name: str) -> BuiltLayer:
    """OUT/NAME's manifest and zip; UsageError when it was never built, is not lambdakit's, or its zip
    is not the one the manifest vouches for."""
    published = out / name
    build_hint = f"run lambdakit build-layer {name} first" + ("" if out == DEFAULT_OUT else f" --out {out}")
    if not published.exists():
        raise UsageError(f"no built layer {name} in {out}", hint=build_hint, step="read")
    manifest = read_manifest(published / MANIFEST)
    if manifest is None:
        raise UsageError(
            f"{published / MANIFEST} is missing or not a layer manifest this lambdakit wrote",
            hint=f"build it again: lambdakit build-layer {name} --force",
            step="read",
        )
    zip_path = published / manifest.zip.file
    try:
        data = zip_path.read_bytes()
    except OSError as err:
        raise UsageError(f"cannot read {zip_path}: {err}", hint=build_hint, step="read") from err
    if hashlib.sha256(data).hexdigest() != manifest.zip.sha256:
        raise UsageError(
            f"{zip_path} is not the zip its layer.json records (changed since it was built)",
            hint=f"build it again: lambdakit build-layer {name} --force",
            step="read",
        )
    return BuiltLayer(manifest=manifest, data=data)


def publish_regions(options: PublishOptions) -> tuple[str, ...]:
    """The regions asked for, each once; else the samconfig environment's (as deploy decides), else
    LocalStack's default or AWS_REGION."""
    if options.regions:
        return tuple(dict.fromkeys(options.regions))
    environment = None
    if options.config_env is not None:
        environment = read_samconfig(options.project / "samconfig.toml", options.config_env)
    region = configured_region(options.destination, environment)
    if not region:
        raise UsageError(
            "no region to publish to on AWS",
            hint="pass --region (repeatable), --env (a samconfig.toml environment with a region) or set "
            "AWS_REGION",
        )
    return (region,)


@contextmanager
def aws_errors(doing: str, region: str, done: list[RegionOutcome]) -> Iterator[None]:
    """botocore's failures as an environment problem naming what failed and what was already published."""
    try:
        yield
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as err:
        if isinstance(err, botocore.exceptions.NoCredentialsError):
            hint = "configure AWS credentials (aws configure, AWS_PROFILE, AWS_ACCESS_KEY_ID)"
        elif isinstance(err, botocore.exceptions.ClientError) and "AccessDenied" in str(err):
            hint = (
                "the credentials need lambda:ListLayerVersions, GetLayerVersion, PublishLayerVersion "
                "(and, for a large zip, sts:GetCallerIdentity, s3:CreateBucket, s3:PutObject)"
            )
        else:
            hint = "check the region, the credentials and that the endpoint answers"
        already = ("; already published: " + ", ".join(o.arn for o in done)) if done else ""
        raise EnvironmentProblem(f"{doing} in {region}: {err}{already}", hint=hint, step="publish") from err


def latest_version(lambda_client: Any, layer_name: str) -> dict[str, Any] | None:
    """The layer's newest version as list_layer_versions describes it; None when it has none."""
    versions: list[dict[str, Any]] = []
    try:
        for page in lambda_client.get_paginator("list_layer_versions").paginate(LayerName=layer_name):
            versions += page.get("LayerVersions", [])
    except botocore.exceptions.ClientError as err:
        if err.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            return None
        raise
    return max(versions, key=lambda v: int(v["Version"]), default=None)


def holds(version: dict[str, Any], layer: BuiltLayer) -> bool:
    """Whether a listed version was published from this zip for this runtime and architecture."""
    described = DESCRIBED_SHA256.search(str(version.get("Description", "")))
    return (
        described is not None
        and described.group(1) == layer.sha256
        and version.get("CompatibleRuntimes") == [layer.manifest.runtime]
        and version.get("CompatibleArchitectures") == [layer.manifest.arch]
    )


def upload(clients: Clients, region: str, bucket: str | None, key: str, data: bytes) -> str:
    """Put the zip in S3 for Lambda to read: in the bucket given, else in lambdakit's own for this account
    and region (Lambda reads S3Bucket from its own region), created when missing. Returns the bucket."""
    s3 = clients("s3")
    if bucket is not None:
        s3.put_object(Bucket=bucket, Key=key, Body=data)
        return bucket
    account = str(clients("sts").get_caller_identity()["Account"])
    bucket = f"lambdakit-layers-{account}-{region}"
    # ExpectedBucketOwner: a bucket of that name in another account is never written to.
    try:
        s3.head_bucket(Bucket=bucket, ExpectedBucketOwner=account)
    except botocore.exceptions.ClientError as err:
        if err.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket", "NotFound"):
            raise
        if region == "us-east-1":  # the default location, which S3 refuses as a LocationConstraint
            s3.create_bucket(Bucket=bucket)
        else:
            s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region})
    s3.put_object(Bucket=bucket, Key=key, Body=data, ExpectedBucketOwner=account)
    return bucket


def publish_in_region(
    clients: Clients,
    region: str,
    layer_name: str,
    layer: BuiltLayer,
    options: PublishOptions,
    progress: Progress,
    done: list[RegionOutcome],
) -> RegionOutcome:
    lambda_ = clients("lambda")
    with aws_errors(f"reading the versions of layer {layer_name}", region, done):
        latest = latest_version(lambda_, layer_name)
        if latest is not None and holds(latest, layer):
            # The description is only text anyone may write: Lambda's own digest of the content decides.
            stored = lambda_.get_layer_version(LayerName=layer_name, VersionNumber=latest["Version"])
            if stored.get("Content", {}).get("CodeSha256") == layer.code_sha256:
                return RegionOutcome(
                    region=region,
                    arn=str(latest["LayerVersionArn"]),
                    version=int(latest["Version"]),
                    status="up-to-date",
                    via=None,
                )
    via: Upload = "s3" if len(layer.data) > options.direct_limit else "direct"
    content: dict[str, Any] = {"ZipFile": layer.data}
    if via == "s3":
        key = f"layers/{layer_name}/{layer.sha256}.zip"
        progress.step("upload", f"{key} to S3 in {region}: {len(layer.data)} bytes, over the direct limit")
        with aws_errors("uploading the zip to S3", region, done):
            bucket = upload(clients, region, options.s3_bucket, key, layer.data)
        content = {"S3Bucket": bucket, "S3Key": key}
    progress.step("publish", f"{layer_name} in {region} ({via})")
    with aws_errors(f"publishing layer {layer_name}", region, done):
        response = lambda_.publish_layer_version(
            LayerName=layer_name,
            Description=layer.description,
            Content=content,
            CompatibleRuntimes=[layer.manifest.runtime],
            CompatibleArchitectures=[layer.manifest.arch],
        )
    reported = response.get("Content", {}).get("CodeSha256")
    if reported and reported != layer.code_sha256:
        raise EnvironmentProblem(
            f"{response['LayerVersionArn']} holds content with CodeSha256 {reported}, not this zip's "
            f"{layer.code_sha256}",
            hint="the upload was altered on its way; publish again",
            step="publish",
        )
    return RegionOutcome(
        region=region,
        arn=str(response["LayerVersionArn"]),
        version=int(response["Version"]),
        status="published",
        via=via,
    )


def publish_layer(
    options: PublishOptions,
    progress: Progress,
    *,
    fetch: Fetch = fetch_json,
    clients: Callable[[str, LocalStackInfo | None], Clients] = aws_clients,
) -> PublishResult:
    """Publish OUT/NAME as a version of the Lambda layer in each region, unless that version is there."""
    check_layer_name(options.name)
    layer_name = options.layer_name or options.name
    check_layer_name(layer_name)
    layer = read_built_layer(options.out, options.name)
    manifest = layer.manifest
    if manifest.verdict == "invalid" and manifest.validation is not None:
        raise InvalidLayer(
            f"layer {options.name} for {manifest.runtime} {manifest.arch} is invalid; it is not published",
            hint=f"fix the problems listed and build it again (lambdakit build-layer {options.name})",
            step="read",
            report=manifest.validation.to_dict(),
        )
    result = PublishResult(
        layer=layer_name,
        sha256=layer.sha256,
        runtime=manifest.runtime,
        arch=manifest.arch,
        verdict=manifest.verdict,
        published=False,
        regions=(),
    )
    if manifest.verdict in UNPROVEN and not options.allow_unverified:
        return result
    regions = publish_regions(options)
    if options.s3_bucket and len(regions) > 1 and len(layer.data) > options.direct_limit:
        raise UsageError(
            f"--s3-bucket names one bucket, and Lambda reads a layer's zip from its own region: "
            f"{len(regions)} regions asked",
            hint="publish one region at a time with --s3-bucket, or leave it out (a bucket per region)",
        )
    localstack = None
    if options.destination == "localstack":
        localstack = detect_localstack(options.endpoint_url, fetch)
    done: list[RegionOutcome] = []
    for region in regions:
        client = clients(region, localstack)
        done.append(publish_in_region(client, region, layer_name, layer, options, progress, done))
    return dataclasses.replace(result, published=True, regions=tuple(done))
