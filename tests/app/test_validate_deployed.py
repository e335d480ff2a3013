"""validate --deployed without LocalStack: the Lambda calls against moto, downloads against a local server.

moto answers GetFunction and GetLayerVersion but serves no code (its layer location is
"s3://"), so the end-to-end cases here put the zips in the cache under their sha256
first, which is also what a second run finds; the download itself is tested against an
http.server on 127.0.0.1 serving a zip, a wrong zip and nothing.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import socket
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from click.testing import CliRunner
from moto import mock_aws

from builder.app.deployed import (
    PACKAGE_SOURCE,
    DeployedFunction,
    DeployedLayer,
    StoredZip,
    _at_endpoint,
    check_deployed,
    fetch_artifact,
    lambda_region,
    read_function,
    validate_deployed,
)
from builder.app.samconfig import SamEnvironment
from builder.cli.main import cli
from builder.errors import EnvironmentProblem, UsageError
from builder.problems import Problem
from builder.report import ValidationReport

REGION = "us-east-1"
LAYER_A = {"python/shared.py": "WHO = 'a'\n", "python/only_a.py": "A = 1\n"}
LAYER_B = {
    "python/shared.py": "WHO = 'b'\n",
    "python/broken.py": "raise ImportError('broken on purpose')\n",
    # Named for CPython 3.11: python3.12 never loads it.
    "python/fast.cpython-311-x86_64-linux-gnu.so": "not loaded on 3.12",
}
CODE = {"handler.py": "import shared\n\ndef handler(event, context):\n    return shared.WHO\n"}


def zip_bytes(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            # A fixed time: the same files make the same zip, and the same sha256.
            archive.writestr(zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0)), text)
    return buffer.getvalue()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def seed_cache(cache: Path, *zips: bytes) -> None:
    cache.mkdir(parents=True, exist_ok=True)
    for data in zips:
        (cache / f"{sha256(data)}.zip").write_bytes(data)


@pytest.fixture
def lambda_client() -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("lambda", region_name=REGION)


def role() -> str:
    iam = boto3.client("iam", region_name=REGION)
    return str(iam.create_role(RoleName="fn", AssumeRolePolicyDocument="{}")["Role"]["Arn"])


def create(lambda_client: Any, name: str, *, handler: str = "handler.handler", **extra: Any) -> list[str]:
    """The function with layers A then B; returns their version ARNs."""
    arns = [
        lambda_client.publish_layer_version(LayerName=layer, Content={"ZipFile": zip_bytes(files)})[
            "LayerVersionArn"
        ]
        for layer, files in (("a", LAYER_A), ("b", LAYER_B))
    ]
    lambda_client.create_function(
        FunctionName=name,
        Runtime=extra.pop("Runtime", "python3.12"),
        Role=role(),
        Handler=handler,
        Code={"ZipFile": zip_bytes(CODE)},
        Layers=arns,
        **extra,
    )
    return arns


def test_read_function_gives_runtime_arch_handler_and_the_layers_in_order(lambda_client: Any) -> None:
    arns = create(lambda_client, "worker", Architectures=["arm64"])
    function = read_function(lambda_client, "worker")
    assert (function.name, function.runtime, function.arch, function.handler) == (
        "worker",
        "python3.12",
        "arm64",
        "handler.handler",
    )
    # Lambda's base64 CodeSha256, as the hex sha256 of the zip that was uploaded.
    assert function.code.sha256 == sha256(zip_bytes(CODE))
    assert [(layer.arn, layer.name, layer.version, layer.ref) for layer in function.layers] == [
        (arns[0], "a", 1, "a:1"),
        (arns[1], "b", 1, "b:1"),
    ]
    assert [layer.content.sha256 for layer in function.layers] == [
        sha256(zip_bytes(LAYER_A)),
        sha256(zip_bytes(LAYER_B)),
    ]


def test_a_function_that_does_not_exist_is_a_usage_error(lambda_client: Any) -> None:
    with pytest.raises(UsageError, match="function no-such-function: not found") as raised:
        read_function(lambda_client, "no-such-function")
    assert "region" in raised.value.hint


def test_an_empty_name_is_a_usage_error_not_a_connection_problem(lambda_client: Any) -> None:
    with pytest.raises(UsageError, match="function : Parameter validation failed") as raised:
        read_function(lambda_client, "")
    assert raised.value.hint == "give the function's name or ARN"


def test_a_deleted_layer_version_is_named_with_what_to_do(lambda_client: Any) -> None:
    arns = create(lambda_client, "worker")
    lambda_client.delete_layer_version(LayerName="b", VersionNumber=1)
    with pytest.raises(UsageError, match=f"layer {arns[1]}: not found") as raised:
        read_function(lambda_client, "worker")
    assert "deleted" in raised.value.hint


def test_a_non_python_runtime_is_refused_by_name(lambda_client: Any) -> None:
    create(lambda_client, "node", Runtime="nodejs20.x", handler="index.handler")
    with pytest.raises(UsageError, match=r"node runs on nodejs20\.x: lambdakit has facts for Python"):
        read_function(lambda_client, "node")


def test_an_image_function_is_not_a_zip_function(lambda_client: Any) -> None:
    lambda_client.create_function(
        FunctionName="image",
        Role=role(),
        PackageType="Image",
        Code={"ImageUri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/app:latest"},
    )
    with pytest.raises(UsageError, match="image is not a zip function"):
        read_function(lambda_client, "image")


def test_an_overwritten_layer_file_and_each_problems_source(lambda_client: Any, tmp_path: Path) -> None:
    create(lambda_client, "worker", handler="handler.missing")
    cache = tmp_path / "cache"
    seed_cache(cache, zip_bytes(CODE), zip_bytes(LAYER_A), zip_bytes(LAYER_B))

    report = validate_deployed(lambda_client, "worker", cache=cache, import_check="interpreter")

    assert (report.code_cached, report.layers_cached) == (True, (True, True))
    assert [o.to_dict() for o in report.overwrites] == [
        {"path": "python/shared.py", "overwritten": "a:1", "by": "b:1"}
    ]
    found = {(p.code, p.path): p for p in report.report.problems}
    overwrite = found["layer-overwrite", "python/shared.py"]
    assert (overwrite.severity, overwrite.source) == ("warning", "layer b:1")
    assert "a:1" in overwrite.message and "b:1" in overwrite.message
    assert found["abi-mismatch", "python/fast.cpython-311-x86_64-linux-gnu.so"].source == "layer b:1"
    assert found["import-failed", "broken"].source == "layer b:1"
    assert "broken on purpose" in found["import-failed", "broken"].message
    assert found["handler-not-found", "handler.missing"].source == PACKAGE_SOURCE
    assert report.verdict == "invalid"
    # The handler imported layer B's shared.py, the copy Lambda keeps.
    assert report.report.imports.modules["shared"] is None

    document = report.to_dict()
    assert (document["schema"], document["ok"], document["verdict"]) == (1, False, "invalid")
    assert document["function"] == {
        "name": "worker",
        "runtime": "python3.12",
        "arch": "x86_64",
        "handler": "handler.missing",
        "code_sha256": sha256(zip_bytes(CODE)),
        "cached": True,
    }
    assert [(layer["name"], layer["version"], layer["cached"]) for layer in document["layers"]] == [
        ("a", 1, True),
        ("b", 1, True),
    ]
    # The report inside reads back as any validation report, sources included.
    assert ValidationReport.from_dict(document["report"]).problems == report.report.problems


def test_the_package_hides_a_layers_module_and_is_named_as_its_source(
    lambda_client: Any, tmp_path: Path
) -> None:
    """/var/task comes before /opt/python: the package's broken.py is the one imported."""
    code = {**CODE, "broken.py": "raise RuntimeError('the package copy')\n"}
    arn = lambda_client.publish_layer_version(LayerName="b", Content={"ZipFile": zip_bytes(LAYER_B)})
    lambda_client.create_function(
        FunctionName="shadow",
        Runtime="python3.12",
        Role=role(),
        Handler="handler.handler",
        Code={"ZipFile": zip_bytes(code)},
        Layers=[arn["LayerVersionArn"]],
    )
    cache = tmp_path / "cache"
    seed_cache(cache, zip_bytes(code), zip_bytes(LAYER_B))
    report = validate_deployed(lambda_client, "shadow", cache=cache, import_check="interpreter")
    failed = next(p for p in report.report.problems if p.code == "import-failed" and p.path == "broken")
    assert "the package copy" in failed.message
    assert failed.source == PACKAGE_SOURCE
    assert report.overwrites == ()


def test_a_handler_that_needs_its_environment_is_unproven_and_named_as_the_packages(
    lambda_client: Any, tmp_path: Path
) -> None:
    code = {
        "app.py": "import os\n\nTABLE = os.environ['TABLE']\n\n\ndef handler(event, context):\n    pass\n"
    }
    lambda_client.create_function(
        FunctionName="configured",
        Runtime="python3.12",
        Role=role(),
        Handler="app.handler",
        Code={"ZipFile": zip_bytes(code)},
    )
    cache = tmp_path / "cache"
    seed_cache(cache, zip_bytes(code))
    report = validate_deployed(lambda_client, "configured", cache=cache, import_check="interpreter")
    unproven = next(p for p in report.report.problems if p.code == "handler-unproven")
    assert (unproven.path, unproven.source) == ("app.handler", PACKAGE_SOURCE)
    assert report.layers_cached == ()


def test_moto_serves_no_code_so_an_uncached_zip_is_an_environment_problem(
    lambda_client: Any, tmp_path: Path
) -> None:
    create(lambda_client, "worker")
    cache = tmp_path / "cache"
    seed_cache(cache, zip_bytes(CODE), zip_bytes(LAYER_A))
    with pytest.raises(EnvironmentProblem, match="layer b:1: cannot download it") as raised:
        validate_deployed(lambda_client, "worker", cache=cache, import_check="interpreter")
    assert raised.value.step == "download"
    assert sorted(p.name for p in cache.iterdir()) == sorted(
        f"{sha256(zip_bytes(files))}.zip" for files in (CODE, LAYER_A)
    )


# --- the download and its cache -------------------------------------------------------------------


class ZipServer:
    """http.server on 127.0.0.1 in a thread: GET /NAME serves files[NAME], counting requests."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.requests: list[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(self.path)
                body = server.files.get(self.path.lstrip("/"))
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[ZipServer]:
    serving = ZipServer({"layer.zip": zip_bytes(LAYER_A)})
    yield serving
    serving.close()


def test_a_download_is_checked_cached_and_not_downloaded_again(server: ZipServer, tmp_path: Path) -> None:
    data = zip_bytes(LAYER_A)
    stored = StoredZip(sha256=sha256(data), location=f"{server.url}/layer.zip")
    first = fetch_artifact(stored, tmp_path / "cache", what="layer a:1")
    assert (first.cached, first.path.read_bytes()) == (False, data)
    assert first.path == tmp_path / "cache" / f"{sha256(data)}.zip"
    second = fetch_artifact(stored, tmp_path / "cache", what="layer a:1")
    assert (second.cached, second.path) == (True, first.path)
    assert server.requests == ["/layer.zip"]
    # Only the verified zip is left: no partial download beside it.
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [first.path.name]


def test_a_download_with_another_sha256_is_refused_and_never_cached(
    server: ZipServer, tmp_path: Path
) -> None:
    claimed = "0" * 64
    with pytest.raises(EnvironmentProblem, match=f"Lambda records {claimed}") as raised:
        fetch_artifact(
            StoredZip(sha256=claimed, location=f"{server.url}/layer.zip"), tmp_path, what="layer x"
        )
    assert sha256(zip_bytes(LAYER_A)) in raised.value.message
    assert list(tmp_path.iterdir()) == []


def test_a_cached_zip_that_lost_its_hash_is_downloaded_again(server: ZipServer, tmp_path: Path) -> None:
    data = zip_bytes(LAYER_A)
    (tmp_path / f"{sha256(data)}.zip").write_bytes(b"truncated")
    fetched = fetch_artifact(
        StoredZip(sha256=sha256(data), location=f"{server.url}/layer.zip"), tmp_path, what="layer a:1"
    )
    assert (fetched.cached, fetched.path.read_bytes()) == (False, data)


@pytest.mark.parametrize(
    ("location", "hinted"),
    [
        ("closed-port", "expires"),
        ("s3://", "http(s)"),  # what moto hands out: never opened, as no file:// would be
        ("not a url", "http(s)"),
    ],
)
def test_an_unreachable_location_is_an_environment_problem(
    location: str, hinted: str, tmp_path: Path
) -> None:
    if location == "closed-port":
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            location = f"http://127.0.0.1:{sock.getsockname()[1]}/layer.zip"
    with pytest.raises(EnvironmentProblem, match="cannot download it from Lambda's location") as raised:
        fetch_artifact(StoredZip(sha256="0" * 64, location=location), tmp_path, what="layer x:1")
    assert hinted in raised.value.hint
    assert list(tmp_path.iterdir()) == []


def test_a_missing_file_on_the_server_is_an_environment_problem(server: ZipServer, tmp_path: Path) -> None:
    with pytest.raises(EnvironmentProblem, match="HTTP Error 404"):
        fetch_artifact(StoredZip(sha256="0" * 64, location=f"{server.url}/gone.zip"), tmp_path, what="code")


# --- where the function is ------------------------------------------------------------------------


def test_the_region_comes_from_the_option_the_environment_or_localstack(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    prod = SamEnvironment(name="prod", stack_name="app", region="eu-west-1", parameters={})
    assert lambda_region("aws", region="ap-south-1", environment=prod) == "ap-south-1"
    assert lambda_region("aws", region=None, environment=prod) == "eu-west-1"
    assert lambda_region("localstack", region=None, environment=None) == "us-east-1"
    with pytest.raises(UsageError, match="no region for --target aws"):
        lambda_region("aws", region=None, environment=None)
    monkeypatch.setenv("AWS_REGION", "sa-east-1")
    assert lambda_region("aws", region=None, environment=None) == "sa-east-1"


# --- the command ----------------------------------------------------------------------------------


def run(*args: str) -> tuple[int, Any]:
    result = CliRunner().invoke(cli, ["validate", *args, "--json"])
    return result.exit_code, json.loads(result.output)


def test_the_command_on_aws_reads_the_function_and_prints_the_document(
    lambda_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAMBDAKIT_CACHE", str(tmp_path))
    create(lambda_client, "worker")
    seed_cache(tmp_path / "deployed", zip_bytes(CODE), zip_bytes(LAYER_A), zip_bytes(LAYER_B))
    code, document = run(
        "--deployed", "worker", "--target", "aws", "--region", REGION, "--import-check", "interpreter"
    )
    assert code == 1, document
    assert document["function"]["name"] == "worker"
    assert document["overwrites"] == [{"path": "python/shared.py", "overwritten": "a:1", "by": "b:1"}]
    sources = {(p["code"], p["path"]): p.get("source") for p in document["report"]["problems"]}
    assert sources["import-failed", "broken"] == "layer b:1"

    text = CliRunner().invoke(
        cli, ["validate", "--deployed", "worker", "--target", "aws", "--region", REGION, "--import-check",
              "interpreter"],
    )  # fmt: skip
    assert text.exit_code == 1
    assert "worker: INVALID for python3.12 x86_64" in text.output
    assert "layer b:1: sha256" in text.output and "(cached)" in text.output
    assert "from layer b:1:" in text.output


def test_the_command_names_a_function_that_does_not_exist(lambda_client: Any) -> None:
    code, document = run("--deployed", "nowhere", "--target", "aws", "--region", REGION)
    assert code == 2
    assert (document["ok"], document["error"]) == (False, "UsageError")
    assert "function nowhere: not found" in document["message"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "give a PATH to validate, or --deployed FUNCTION"),
        (("--deployed", "fn", "--runtime", "python3.11"), "--runtime cannot be given with --deployed"),
        (("--deployed", "fn", "--function"), "--function cannot be given with --deployed"),
        (("--deployed", "fn", "--env", "prod", "--region", "eu-west-1"), "--env and --region both"),
        ((".", "--region", "eu-west-1"), "--region: for --deployed FUNCTION only"),
        (("--deployed", "fn", "--env", "missing"), "has no environment 'missing'"),
    ],
)
def test_options_that_do_not_go_together_are_usage_errors(
    args: tuple[str, ...], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "samconfig.toml").write_text('version = 0.1\n[prod.deploy.parameters]\nstack_name = "app"\n')
    code, document = run(*args)
    assert code == 2, document
    assert message in document["message"]


def test_no_localstack_at_the_endpoint_is_an_environment_problem() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    code, document = run("--deployed", "fn", "--target", "localstack", "--endpoint-url", closed)
    assert code == 2
    assert (document["error"], document["step"]) == ("EnvironmentProblem", "detect")
    assert "LocalStack does not answer" in document["message"]


# --- the provenance field -------------------------------------------------------------------------


def test_a_problem_without_a_source_is_written_as_before_and_one_with_it_reads_back() -> None:
    plain = Problem(code="abi-mismatch", path="python/x.so", message="m", hint="h")
    assert set(plain.to_dict()) == {"code", "path", "message", "hint", "severity"}
    assert Problem.from_dict(plain.to_dict()) == plain
    sourced = Problem(code="abi-mismatch", path="python/x.so", message="m", hint="h", source="layer a:1")
    assert sourced.to_dict()["source"] == "layer a:1"
    assert Problem.from_dict(sourced.to_dict()) == sourced
    with pytest.raises(ValueError, match="not a problem"):
        Problem.from_dict({**plain.to_dict(), "origin": "x"})


def test_on_localstack_the_download_goes_to_the_endpoint_not_the_host_it_names() -> None:
    """LocalStack names its locations by LOCALSTACK_HOST (localhost.localstack.cloud by default),
    which need not resolve here: lambdakit asks the endpoint it was given."""

    def stored(path: str) -> StoredZip:
        return StoredZip(sha256="0" * 64, location=f"http://localhost.localstack.cloud:4566{path}?sig=1")

    layer = DeployedLayer(
        arn="arn:aws:lambda:us-east-1:1:layer:l:1", name="l", version=1, content=stored("/l")
    )
    function = DeployedFunction(name="f", runtime="python3.12", arch="x86_64", handler="a.b",
                                code=stored("/code"), layers=(layer,))  # fmt: skip
    moved = _at_endpoint(function, "http://127.0.0.1:45123")
    assert moved.code.location == "http://127.0.0.1:45123/code?sig=1"
    assert moved.layers[0].content.location == "http://127.0.0.1:45123/l?sig=1"


def test_a_location_that_is_no_http_address_is_never_opened(tmp_path: Path) -> None:
    secret = tmp_path / "secret.zip"
    secret.write_bytes(b"PK")
    with pytest.raises(EnvironmentProblem, match="is not an http"):
        fetch_artifact(StoredZip(sha256="0" * 64, location=secret.as_uri()), tmp_path / "cache", what="code")


def test_a_layer_that_cannot_be_laid_is_named_and_overwrites_nothing(tmp_path: Path) -> None:
    def zipped(name: str, files: list[tuple[str, str]]) -> Path:
        with zipfile.ZipFile(tmp_path / name, "w") as archive:
            for member, text in files:
                archive.writestr(member, text)
        return tmp_path / name

    code = zipped("code.zip", [("app.py", "def handler(event, context):\n    return 1\n")])
    layers = [
        zipped("a.zip", [("python/shared.py", "X = 1\n")]),
        zipped("b.zip", [("python/shared.py", "X = 2\n"), ("python/shared.py", "X = 3\n")]),
        zipped("c.zip", []),
    ]
    stored = StoredZip(sha256="0" * 64, location="http://unused")
    function = DeployedFunction(
        name="f", runtime="python3.12", arch="x86_64", handler="app.handler", code=stored,
        layers=tuple(DeployedLayer(arn=f"arn:{n}", name=n, version=1, content=stored) for n in "abc"),
    )  # fmt: skip
    report, overwrites = check_deployed(function, code, layers, "interpreter")
    # b was refused whole: nothing of it reached /opt, so it replaced nothing of a's.
    assert overwrites == ()
    sources = {(p.code, p.path): p.source for p in report.problems}
    assert sources[("bad-archive", "python/shared.py")] == "layer b:1"
    assert sources[("bad-layout", ".")] == "layer c:1"
