"""`lambdakit validate --deployed` against a real LocalStack: two layer versions, the second overwriting
a file of the first, and a function using both, all made with boto3.

Real: LocalStack's Lambda API (PublishLayerVersion, CreateFunction, GetFunction,
GetLayerVersion) and the code and layer zips downloaded from the locations it hands
out. Community LocalStack stores layers without applying them when a function runs:
what is checked here is what Lambda would assemble, read back from the service.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import uuid
import zipfile
from pathlib import Path
from typing import Any

import boto3
import pytest

from builder.app.localstack_info import LocalStackInfo

LAMBDAKIT = Path(sys.executable).parent / "lambdakit"
LAYER_A = {"python/shared.py": "WHO = 'a'\n", "python/only_a.py": "A = 1\n"}
LAYER_B = {"python/shared.py": "WHO = 'b'\n", "python/only_b.py": "B = 1\n"}
CODE = {"app.py": "import shared\n\n\ndef handler(event, context):\n    return shared.WHO\n"}


def zip_bytes(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            # A fixed time: the same files make the same zip, and the same sha256.
            archive.writestr(zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0)), text)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def lambda_client(localstack: LocalStackInfo) -> Any:
    session = boto3.session.Session(
        region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test"
    )
    return session.client("lambda", endpoint_url=localstack.url)


@pytest.fixture(scope="module")
def two_layer_function(lambda_client: Any) -> tuple[str, list[str]]:
    """A python3.12 x86_64 function with layers A then B; returns its name and the layers' NAME:VERSION."""
    suffix = uuid.uuid4().hex[:8]
    refs, arns = [], []
    for name, files in ((f"shared-a-{suffix}", LAYER_A), (f"shared-b-{suffix}", LAYER_B)):
        published = lambda_client.publish_layer_version(LayerName=name, Content={"ZipFile": zip_bytes(files)})
        arns.append(published["LayerVersionArn"])
        refs.append(f"{name}:{published['Version']}")
    function = f"two-layers-{suffix}"
    lambda_client.create_function(
        FunctionName=function,
        Runtime="python3.12",
        Architectures=["x86_64"],
        Role="arn:aws:iam::000000000000:role/validate-deployed",
        Handler="app.handler",
        Code={"ZipFile": zip_bytes(CODE)},
        Layers=arns,
    )
    return function, refs


def validate_deployed(
    localstack: LocalStackInfo, cache: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    argv = [str(LAMBDAKIT), "validate", "--target", "localstack", "--endpoint-url", localstack.url, *args]
    env = {**os.environ, "LAMBDAKIT_CACHE": str(cache)}
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600, check=False)


def test_the_overwritten_file_is_reported_and_a_second_run_downloads_nothing(
    localstack: LocalStackInfo, two_layer_function: tuple[str, list[str]], tmp_path: Path
) -> None:
    function, (first, second) = two_layer_function
    result = validate_deployed(localstack, tmp_path, "--deployed", function, "--json")
    document = json.loads(result.stdout)
    assert result.returncode == 0, document
    assert (document["schema"], document["ok"], document["verdict"]) == (1, True, "valid")
    assert (document["function"]["runtime"], document["function"]["arch"]) == ("python3.12", "x86_64")
    assert document["function"]["handler"] == "app.handler"
    assert [f"{layer['name']}:{layer['version']}" for layer in document["layers"]] == [first, second]
    assert document["overwrites"] == [{"path": "python/shared.py", "overwritten": first, "by": second}]
    overwrite = [p for p in document["report"]["problems"] if p["code"] == "layer-overwrite"]
    assert len(overwrite) == 1
    assert (overwrite[0]["path"], overwrite[0]["severity"], overwrite[0]["source"]) == (
        "python/shared.py",
        "warning",
        f"layer {second}",
    )
    assert first in overwrite[0]["message"] and second in overwrite[0]["message"]
    # Downloaded from LocalStack's locations, each checked against its CodeSha256, and cached.
    assert document["function"]["cached"] is False
    assert [layer["cached"] for layer in document["layers"]] == [False, False]
    cached = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "deployed").iterdir()}
    expected = {document["function"]["code_sha256"], *(layer["code_sha256"] for layer in document["layers"])}
    assert set(cached) == {f"{sha}.zip" for sha in expected}

    again = validate_deployed(localstack, tmp_path, "--deployed", function, "--json")
    repeated = json.loads(again.stdout)
    assert again.returncode == 0, repeated
    assert repeated["function"]["cached"] is True
    assert [layer["cached"] for layer in repeated["layers"]] == [True, True]
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "deployed").iterdir()} == cached
    assert repeated["overwrites"] == document["overwrites"]

    text = validate_deployed(localstack, tmp_path, "--deployed", function)
    print(f"\n$ lambdakit validate --deployed {function} --target localstack\n{text.stdout}")
    assert text.returncode == 0, text.stdout + text.stderr
    assert f"layer {second}: sha256" in text.stdout and "(cached)" in text.stdout
    assert f"from layer {second}:" in text.stdout and "layer-overwrite" in text.stdout


def test_a_function_that_does_not_exist_exits_2_naming_it(localstack: LocalStackInfo, tmp_path: Path) -> None:
    name = f"no-such-function-{uuid.uuid4().hex[:8]}"
    result = validate_deployed(localstack, tmp_path, "--deployed", name, "--json")
    document = json.loads(result.stdout)
    assert result.returncode == 2, document
    assert (document["ok"], document["error"]) == (False, "UsageError")
    assert f"function {name}: not found" in document["message"]
    assert not (tmp_path / "deployed").exists()

    text = validate_deployed(localstack, tmp_path, "--deployed", name)
    assert text.returncode == 2
    assert "Traceback" not in text.stderr
    assert f"error: function {name}: not found" in text.stderr
