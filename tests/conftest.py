"""Markers that say what a test needs, so a run can select by them.

A test that uses a service's fixture is marked with that service, wherever it lives:
`pytest -m "not docker and not localstack"` runs what needs neither a Docker engine
nor LocalStack. A test module that resolves from the package index says so itself
with `pytestmark = pytest.mark.network`. `make test` selects nothing: CI runs them all.
"""

from __future__ import annotations

import pytest

# The fixture that brings each service -> the markers of the tests that need it. LocalStack
# runs Lambda code in containers: its tests need the engine too.
SERVICE_FIXTURES = {
    "docker_client": ("docker",),
    "localstack": ("localstack", "docker"),
    "pg": ("postgres",),
    "wheels": ("network",),
}


# First, so that the markers are there when `-m` deselects.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for fixture in getattr(item, "fixturenames", ()):
            for marker in SERVICE_FIXTURES.get(fixture, ()):
                item.add_marker(marker)
