"""doctor's checks, each on what the test controls: a listening socket, a fake LocalStack, PATH."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from builder import doctor
from builder.doctor import (
    Check,
    DoctorReport,
    check_interpreter,
    check_localstack,
    check_postgres,
    check_tool,
)
from builder.runtimes import target

from .conftest import free_port


def test_postgres_reachable_and_not() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert check_postgres("127.0.0.1", port).ok
    missing = check_postgres("127.0.0.1", free_port(), timeout_s=0.5)
    assert not missing.ok
    assert "docker compose up -d postgres" in missing.fix


def test_localstack_line_says_what_deploy_and_e2e_will_do() -> None:
    pages = {
        "/_localstack/health": {"services": {"sqs": "running"}},
        "/_localstack/info": {"version": "4.14.0", "edition": "community"},
    }
    check = check_localstack("http://ls", lambda url: pages[url.removeprefix("http://ls")])
    assert check.ok
    assert "community" in check.detail
    assert "deploy copies layers into function packages" in check.detail
    assert "e2e invokes the API function" in check.detail

    def down(url: str) -> dict:
        raise OSError("connection refused")

    missing = check_localstack("http://ls", down)
    assert not missing.ok and missing.optional
    assert "scripts/localstack.sh start" in missing.fix


def test_tool_missing_or_present(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(doctor, "find_tool", lambda name: None)
    assert check_tool("samlocal", "pip install aws-sam-cli-local", optional=True) == Check(
        name="samlocal", ok=False, detail="not installed", fix="pip install aws-sam-cli-local", optional=True
    )
    fake = tmp_path / "sam"
    fake.write_text("#!/bin/sh\necho 'SAM CLI, version 9.9.9'\n")
    fake.chmod(0o755)
    monkeypatch.setattr(doctor, "find_tool", lambda name: str(fake))
    found = check_tool("sam", "pip install aws-sam-cli")
    assert found.ok
    assert found.detail.startswith("SAM CLI, version 9.9.9")


def test_interpreter_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(doctor, "find_interpreter", lambda version: None)
    line = check_interpreter(target("python3.14", "x86_64"), needed=False)
    assert not line.ok and line.optional
    assert line.fix == "pyenv install 3.14"
    assert "not verified" in line.detail


def test_only_required_checks_decide() -> None:
    optional_missing = Check(name="samlocal", ok=False, detail="", optional=True)
    assert DoctorReport(checks=(Check(name="sam", ok=True, detail=""), optional_missing)).ok
    assert not DoctorReport(checks=(Check(name="sam", ok=False, detail=""),)).ok
    assert DoctorReport(checks=()).to_dict() == {"schema": 1, "ok": True, "checks": []}
