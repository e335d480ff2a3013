"""`lambdakit publish-layer` against moto's Lambda, S3 and STS: what it publishes, when it publishes
nothing, the S3 path for a large zip, and what it refuses.

The layers are written as build-layer publishes them (OUT/NAME/{tree/, NAME.zip, layer.json}, the
manifest through builder.manifest.Manifest, the zip by builder.package.write_zip), with the verdict
each test needs: building a real one takes the package index and is done by the LocalStack test.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from click.testing import CliRunner, Result
from moto import mock_aws

from builder.app.deploy import Clients, aws_clients
from builder.app.localstack_info import LocalStackInfo
from builder.app.publish import DIRECT_UPLOAD_LIMIT, REQUEST_LIMIT, PublishOptions, publish_layer
from builder.cli.publish import publish_layer_command
from builder.errors import EXIT_INVALID, EXIT_NOT_VERIFIED, EXIT_OK, EXIT_USAGE, UsageError
from builder.manifest import Manifest, Sizes, SlimSummary, zip_record
from builder.package import write_zip
from builder.problems import Problem
from builder.progress import Silent
from builder.report import ValidationReport
from builder.runtimes import target
from builder.verify import ImportCheck

from .conftest import free_port

NAME = "six"
RUNTIME, ARCH = "python3.12", "x86_64"
PASSED = ImportCheck(status="passed", where="/usr/bin/python3.12", modules={"six": None})
NOT_VERIFIED = ImportCheck(status="not-verified", where="", reason="no local interpreter")
ABI_MISMATCH = Problem(
    code="abi-mismatch",
    path="python/_speedups.cpython-311-x86_64-linux-gnu.so",
    message="built for CPython 3.11",
    hint="build for python3.12",
)


def write_layer(
    out: Path,
    *,
    name: str = NAME,
    text: str = "VERSION = '1.16.0'\n",
    imports: ImportCheck | None = PASSED,
    problems: tuple[Problem, ...] = (),
) -> Path:
    """OUT/NAME as build-layer leaves it; imports None: built with --no-validate (unvalidated)."""
    published = out / name
    module = published / "tree" / "python" / "six.py"
    module.parent.mkdir(parents=True, exist_ok=True)
    module.write_text(text)
    packaged = write_zip(published / "tree", published / f"{name}.zip")
    validation = None
    if imports is not None:
        validation = ValidationReport(target=target(RUNTIME, ARCH), problems=problems, imports=imports)
    manifest = Manifest(
        name=name,
        tool_version="0",
        runtime=RUNTIME,
        arch=ARCH,
        os_name="Amazon Linux 2023",
        runtime_glibc="2.34",
        highest_glibc_needed=None,
        backend="uv",
        cache_key="0" * 64,
        requirements_sha256="0" * 64,
        packages={"six": "1.16.0"},
        sizes=Sizes(unzipped=packaged.unzipped_bytes, zipped=packaged.zipped_bytes),
        slim=SlimSummary(removed_files=0, bytes_saved=0),
        zip=zip_record(packaged.zip_path, packaged.zip_sha256),
        validation=validation,
        files=packaged.files,
        file_sizes=packaged.file_sizes,
    )
    (published / "layer.json").write_text(json.dumps(manifest.to_dict()))
    return published


def sha256_of(published: Path, name: str = NAME) -> str:
    return hashlib.sha256((published / f"{name}.zip").read_bytes()).hexdigest()


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        yield


def lambda_in(region: str) -> Any:
    return boto3.client("lambda", region_name=region)


def versions(region: str, name: str = NAME) -> list[dict[str, Any]]:
    return lambda_in(region).list_layer_versions(LayerName=name)["LayerVersions"]


def run(out: Path, *args: str) -> Result:
    argv = [NAME, "--target", "aws", "--out", str(out), "--json", *args]
    return CliRunner(mix_stderr=False).invoke(publish_layer_command, argv)


def document(result: Result) -> dict[str, Any]:
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    parsed: dict[str, Any] = json.loads(result.stdout)
    return parsed


def test_the_direct_upload_limit_is_lambdas_request_limit_before_base64() -> None:
    # What Lambda's error message names; the zip's base64 plus the JSON around it must fit.
    assert REQUEST_LIMIT == 69905067
    assert 4 * -(-DIRECT_UPLOAD_LIMIT // 3) < REQUEST_LIMIT - 1024


def test_publishes_once_then_is_up_to_date(tmp_path: Path, aws: None) -> None:
    published = write_layer(tmp_path)
    sha256 = sha256_of(published)

    first = run(tmp_path, "--region", "us-east-1")
    assert first.exit_code == EXIT_OK, first.output
    report = document(first)
    assert report["schema"] == 1 and report["ok"] is True
    assert (report["layer"], report["sha256"], report["verdict"]) == (NAME, sha256, "valid")
    [outcome] = report["regions"]
    assert outcome["status"] == "published" and outcome["via"] == "direct" and outcome["version"] == 1
    assert outcome["arn"].startswith("arn:aws:lambda:us-east-1:") and outcome["arn"].endswith(":layer:six:1")

    [version] = versions("us-east-1")
    assert version["Description"] == f"lambdakit sha256:{sha256} {RUNTIME} {ARCH}"
    assert (version["CompatibleRuntimes"], version["CompatibleArchitectures"]) == ([RUNTIME], [ARCH])
    stored = lambda_in("us-east-1").get_layer_version(LayerName=NAME, VersionNumber=1)
    assert stored["Content"]["CodeSha256"] == base64.b64encode(bytes.fromhex(sha256)).decode()

    second = run(tmp_path, "--region", "us-east-1")
    assert second.exit_code == EXIT_OK, second.output
    assert document(second)["regions"] == [{**outcome, "status": "up-to-date", "via": None}]
    assert len(versions("us-east-1")) == 1

    text = CliRunner(mix_stderr=False).invoke(
        publish_layer_command, [NAME, "--target", "aws", "--out", str(tmp_path), "--region", "us-east-1"]
    )
    assert text.exit_code == EXIT_OK and text.stdout == f"up to date: {outcome['arn']}\n"


def test_a_changed_zip_is_published_as_version_2(tmp_path: Path, aws: None) -> None:
    write_layer(tmp_path)
    assert run(tmp_path, "--region", "us-east-1").exit_code == EXIT_OK
    changed = sha256_of(write_layer(tmp_path, text="VERSION = '1.17.0'\n"))

    result = run(tmp_path, "--region", "us-east-1")
    assert result.exit_code == EXIT_OK, result.output
    [outcome] = document(result)["regions"]
    assert (outcome["status"], outcome["version"]) == ("published", 2)
    newest = max(versions("us-east-1"), key=lambda v: v["Version"])
    assert changed in newest["Description"]


def test_a_version_that_only_claims_the_sha256_is_not_up_to_date(tmp_path: Path, aws: None) -> None:
    # Anyone can write a description: Lambda's CodeSha256 of what the version holds decides.
    published = write_layer(tmp_path)
    lambda_in("us-east-1").publish_layer_version(
        LayerName=NAME,
        Description=f"lambdakit sha256:{sha256_of(published)} {RUNTIME} {ARCH}",
        Content={"ZipFile": b"PK\x05\x06" + b"\0" * 18},  # an empty zip
        CompatibleRuntimes=[RUNTIME],
        CompatibleArchitectures=[ARCH],
    )
    result = run(tmp_path, "--region", "us-east-1")
    assert result.exit_code == EXIT_OK, result.output
    [outcome] = document(result)["regions"]
    assert (outcome["status"], outcome["version"]) == ("published", 2)


def test_each_region_gets_its_own_version(tmp_path: Path, aws: None) -> None:
    write_layer(tmp_path)
    result = run(tmp_path, "--region", "us-east-1", "--region", "eu-west-1", "--region", "us-east-1")
    assert result.exit_code == EXIT_OK, result.output
    outcomes = document(result)["regions"]
    assert [(o["region"], o["status"], o["version"]) for o in outcomes] == [
        ("us-east-1", "published", 1),
        ("eu-west-1", "published", 1),
    ]
    assert ":eu-west-1:" in outcomes[1]["arn"]
    assert len(versions("us-east-1")) == len(versions("eu-west-1")) == 1


def test_the_default_region_is_the_samconfig_environments(
    project: Path, aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_layer(project / "build" / "layers")
    monkeypatch.chdir(project)  # samconfig.toml is read from the current folder
    monkeypatch.setenv("AWS_REGION", "us-west-2")
    result = CliRunner(mix_stderr=False).invoke(
        publish_layer_command, [NAME, "--target", "aws", "--env", "prod", "--json"]
    )
    assert result.exit_code == EXIT_OK, result.output
    assert [o["region"] for o in document(result)["regions"]] == ["eu-west-1"]  # prod's, not AWS_REGION

    without_env = CliRunner(mix_stderr=False).invoke(publish_layer_command, [NAME, "--target", "aws"])
    assert without_env.exit_code == EXIT_OK, without_env.output
    assert ":us-west-2:" in without_env.stdout


def capture_publish_calls(calls: list[dict[str, Any]]) -> Any:
    """aws_clients, whose Lambda clients record the parameters of each PublishLayerVersion call."""

    def clients(region: str, localstack: LocalStackInfo | None) -> Clients:
        make = aws_clients(region, localstack)

        def client(service: str, config: Any = None) -> Any:
            made = make(service, config)
            made.meta.events.register(
                "provide-client-params.lambda.PublishLayerVersion", lambda params, **_: calls.append(params)
            )
            return made

        return client

    return clients


def test_a_zip_over_the_direct_limit_goes_through_lambdakits_bucket(tmp_path: Path, aws: None) -> None:
    published = write_layer(tmp_path)
    data = (published / f"{NAME}.zip").read_bytes()
    calls: list[dict[str, Any]] = []
    options = PublishOptions(
        name=NAME, destination="aws", regions=("eu-west-1",), out=tmp_path, direct_limit=len(data) - 1
    )
    result = publish_layer(options, Silent(), clients=capture_publish_calls(calls))

    [outcome] = result.regions
    assert (outcome.status, outcome.via, outcome.version) == ("published", "s3", 1)
    account = boto3.client("sts", region_name="eu-west-1").get_caller_identity()["Account"]
    bucket, key = f"lambdakit-layers-{account}-eu-west-1", f"layers/{NAME}/{result.sha256}.zip"
    s3 = boto3.client("s3", region_name="eu-west-1")
    assert s3.get_bucket_location(Bucket=bucket)["LocationConstraint"] == "eu-west-1"
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == data
    [call] = calls
    assert call["Content"] == {"S3Bucket": bucket, "S3Key": key}
    # Lambda read it from S3: its digest of the version's content is the zip's.
    stored = lambda_in("eu-west-1").get_layer_version(LayerName=NAME, VersionNumber=1)
    assert stored["Content"]["CodeSha256"] == base64.b64encode(hashlib.sha256(data).digest()).decode()

    # The same zip again: up to date, nothing uploaded or published.
    again = publish_layer(options, Silent(), clients=capture_publish_calls(calls))
    assert [(o.status, o.via) for o in again.regions] == [("up-to-date", None)]
    assert len(calls) == 1


def test_a_given_bucket_is_used_and_cannot_serve_several_regions(tmp_path: Path, aws: None) -> None:
    published = write_layer(tmp_path)
    small = len((published / f"{NAME}.zip").read_bytes()) - 1
    boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="my-layers")
    calls: list[dict[str, Any]] = []
    options = PublishOptions(
        name=NAME, destination="aws", regions=("us-east-1",), out=tmp_path, direct_limit=small,
        s3_bucket="my-layers",
    )  # fmt: skip
    publish_layer(options, Silent(), clients=capture_publish_calls(calls))
    assert calls[0]["Content"]["S3Bucket"] == "my-layers"

    two = PublishOptions(
        name=NAME, destination="aws", regions=("us-east-1", "eu-west-1"), out=tmp_path, direct_limit=small,
        s3_bucket="my-layers",
    )  # fmt: skip
    with pytest.raises(UsageError, match="Lambda reads a layer's zip from its own region"):
        publish_layer(two, Silent())
    assert versions("eu-west-1") == []


def test_an_invalid_layer_is_never_published(tmp_path: Path, aws: None) -> None:
    write_layer(tmp_path, problems=(ABI_MISMATCH,))
    result = run(tmp_path, "--region", "us-east-1", "--allow-unverified")
    assert result.exit_code == EXIT_INVALID, result.output
    error = document(result)
    assert (error["ok"], error["error"]) == (False, "InvalidLayer")
    assert error["validation"]["problems"][0]["code"] == "abi-mismatch"
    assert versions("us-east-1") == []

    text = CliRunner(mix_stderr=False).invoke(
        publish_layer_command, [NAME, "--target", "aws", "--out", str(tmp_path), "--region", "us-east-1"]
    )
    assert text.exit_code == EXIT_INVALID
    assert "abi-mismatch" in text.stderr and "is invalid; it is not published" in text.stderr


@pytest.mark.parametrize(
    ("imports", "verdict"), [(NOT_VERIFIED, "not-verified"), (None, "unvalidated")], ids=["import", "none"]
)
def test_an_unproven_layer_needs_allow_unverified(
    tmp_path: Path, aws: None, imports: ImportCheck | None, verdict: str
) -> None:
    write_layer(tmp_path, imports=imports)
    refused = run(tmp_path, "--region", "us-east-1")
    assert refused.exit_code == EXIT_NOT_VERIFIED, refused.output
    report = document(refused)
    assert (report["ok"], report["verdict"], report["regions"]) == (False, verdict, [])
    assert "nothing was published (--allow-unverified publishes it)" in refused.stderr
    assert versions("us-east-1") == []

    allowed = run(tmp_path, "--region", "us-east-1", "--allow-unverified")
    assert allowed.exit_code == EXIT_OK, allowed.output
    assert [o["status"] for o in document(allowed)["regions"]] == ["published"]


def test_a_layer_never_built_is_a_usage_error(tmp_path: Path, aws: None) -> None:
    result = run(tmp_path, "--region", "us-east-1")
    assert result.exit_code == EXIT_USAGE
    error = document(result)
    assert error["error"] == "UsageError"
    assert error["hint"] == f"run lambdakit build-layer {NAME} first --out {tmp_path}"


def test_hostile_inputs_are_refused_before_anything_is_sent(tmp_path: Path, aws: None) -> None:
    published = write_layer(tmp_path)
    # A name that is a path, here and as --layer-name.
    for argv in (["../six"], [NAME, "--layer-name", "six:1"]):
        result = CliRunner(mix_stderr=False).invoke(
            publish_layer_command, [*argv, "--target", "aws", "--out", str(tmp_path), "--region", "us-east-1"]
        )
        assert result.exit_code == EXIT_USAGE and "is not a layer name" in result.stderr, result.output
    # A zip changed since it was built: not the one its manifest vouches for.
    with (published / f"{NAME}.zip").open("ab") as zip_file:
        zip_file.write(b"tampered")
    tampered = run(tmp_path, "--region", "us-east-1")
    assert tampered.exit_code == EXIT_USAGE
    assert "is not the zip its layer.json records" in document(tampered)["message"]
    # A manifest this lambdakit did not write.
    (published / "layer.json").write_text('{"schema": 1, "name": "six"}')
    garbled = run(tmp_path, "--region", "us-east-1")
    assert garbled.exit_code == EXIT_USAGE
    assert "not a layer manifest this lambdakit wrote" in document(garbled)["message"]
    assert versions("us-east-1") == []


def test_a_malformed_region_or_a_silent_localstack_is_an_environment_error(
    tmp_path: Path, aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_layer(tmp_path)
    # urllib would send the LocalStack probe to a configured proxy, which may answer.
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    bad_region = run(tmp_path, "--region", "us-east-1/../x")
    assert bad_region.exit_code == EXIT_USAGE
    assert document(bad_region)["error"] == "EnvironmentProblem"

    silent = CliRunner(mix_stderr=False).invoke(
        publish_layer_command,
        [NAME, "--out", str(tmp_path), "--endpoint-url", f"http://127.0.0.1:{free_port()}", "--json"],
    )
    assert silent.exit_code == EXIT_USAGE
    assert document(silent)["message"].startswith("LocalStack does not answer")


def lambdakit(out: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "builder", "publish-layer", NAME, "--target", "aws", "--out", str(out)]
    return subprocess.run([*argv, *args], capture_output=True, text=True, env=env, timeout=120, check=False)


def test_no_credentials_or_no_profile_is_an_environment_error_without_traceback(tmp_path: Path) -> None:
    write_layer(tmp_path)
    empty = tmp_path / "empty-config"
    empty.write_text("")
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    env |= {
        "AWS_CONFIG_FILE": str(empty),
        "AWS_SHARED_CREDENTIALS_FILE": str(empty),
        "AWS_EC2_METADATA_DISABLED": "true",  # no instance metadata lookup either
        "AWS_REGION": "eu-west-1",
    }
    no_credentials = lambdakit(tmp_path, env)
    assert no_credentials.returncode == EXIT_USAGE, no_credentials.stderr
    assert "Traceback" not in no_credentials.stderr
    assert "Unable to locate credentials" in no_credentials.stderr
    assert "hint: configure AWS credentials" in no_credentials.stderr

    no_profile = lambdakit(tmp_path, {**env, "AWS_PROFILE": "lambdakit-no-such-profile"}, "--json")
    assert no_profile.returncode == EXIT_USAGE, no_profile.stderr
    assert "Traceback" not in no_profile.stderr
    error = json.loads(no_profile.stdout)
    assert error["error"] == "EnvironmentProblem" and "lambdakit-no-such-profile" in error["message"]

    no_region = lambdakit(tmp_path, {k: v for k, v in env.items() if k != "AWS_REGION"}, "--json")
    assert no_region.returncode == EXIT_USAGE
    assert json.loads(no_region.stdout)["message"] == "no region to publish to on AWS"
