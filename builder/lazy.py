"""The one way lambdakit imports late, so that a command pays only for what it runs.

Three tables use it, each for start-up speed, never to dodge an import cycle
(tests/test_imports.py checks both): the CLI's commands (boto3 and psycopg2 load
only for the commands that talk to AWS or PostgreSQL), the resolve backends and
the import checkers (the Docker SDK, about 0.2 s, loads only when Docker is
used: a no-op rebuild never pays for it). Everywhere else imports sit at the
top of their module.
"""

from __future__ import annotations

import importlib
from typing import Any


def load(reference: str) -> Any:
    """The object named by "package.module:attribute", importing its module now."""
    module, attribute = reference.split(":")
    return getattr(importlib.import_module(module), attribute)
