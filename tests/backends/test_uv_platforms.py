"""uv names no platform between manylinux_2_17 and manylinux_2_28; Amazon Linux 2 has glibc 2.26.

The uv backend therefore offers python3.9-3.11 wheels up to manylinux_2_17 only,
where the pip backend offers every tag up to manylinux_2_26. Shown here on real
packages with compiled wheels, resolved today by both: uv picks the same
releases, so no loadable wheel is lost for them; and neither ever takes a wheel
above the runtime's glibc (checked by the audit on the files themselves).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from packaging.version import Version

from builder import runtimes
from builder.build import BuildOptions, build_layer
from builder.progress import Silent

# Resolves from the package index (tests/conftest.py).
pytestmark = pytest.mark.network

# Compiled packages teams put in Lambda layers, unpinned: the question is what the index has now.
COMPILED = (
    "psycopg2-binary",
    "numpy",
    "cryptography",
    "pydantic-core",
    "lxml",
    "orjson",
    "msgpack",
    "pyyaml",
)


@pytest.mark.parametrize("arch", runtimes.ARCHES)
def test_uv_loses_no_release_against_every_tag_up_to_glibc_2_26(tmp_path: Path, arch: str) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("\n".join(COMPILED) + "\n")
    target = runtimes.target("python3.11", arch)
    assert target.uv_platform_glibc == "2.17" and target.glibc_text == "2.26"
    built = {}
    for backend in ("uv", "pip"):
        options = BuildOptions(
            name=backend,
            requirements=requirements,
            target=target,
            out=tmp_path / "out",
            backend=backend,  # type: ignore[arg-type]
            import_check="interpreter",
        )
        result = build_layer(options, Silent())
        problems = result.manifest.to_dict()["validation"]["problems"]
        assert not [p for p in problems if p["severity"] == "error"], problems
        assert Version(result.manifest.to_dict()["highest_glibc_needed"]) <= Version("2.26")  # not as strings
        built[backend] = result.manifest.to_dict()["packages"]
    assert built["uv"] == built["pip"]
