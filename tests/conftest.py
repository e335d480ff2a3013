"""Markers that say what a test needs, so a run can select by them.

A test that uses a service's fixture is marked with that service, wherever it lives:
`pytest -m "not docker and not localstack"` runs what needs neither a Docker engine
nor LocalStack. A test module that resolves from the package index says so itself
with `pytestmark = pytest.mark.network`. `make test` selects nothing: CI runs them all.
"""

from __future__ import annotations

import pytest

# The fixture that brings each service -> the marker of the tests that need it.
SERVICE_FIXTURES = {
    "docker_client": "docker",
    "localstack": "localstack",
    "pg": "postgres",
    "wheels": "network",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for fixture in getattr(item, "fixturenames", ()):
            if fixture in SERVICE_FIXTURES:
                item.add_marker(SERVICE_FIXTURES[fixture])
