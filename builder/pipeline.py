"""The steps of a build, in order, once build.py has decided there is work:

  resolve (a backend) -> slim -> package, while validate (audit + import check) runs -> layer.json

Everything is written into the build's staging directory; build.py publishes it. This module
and what it imports (the ELF reader, the resolvers) load only when a layer is built
(builder/lazy.py): a no-op rebuild never pays for them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from builder import __version__
from builder.audit import highest_glibc
from builder.audit.rules import check_zipped_size
from builder.backends import Backend, ResolveRequest, requirement_names
from builder.errors import InvalidLayer
from builder.manifest import Manifest, Sizes, SlimSummary, zip_record
from builder.package import write_zip
from builder.progress import Progress
from builder.requirements import RequirementSet
from builder.runtimes import Target
from builder.slim import slim
from builder.store import MANIFEST, TREE_DIR
from builder.validate import validate_tree
from builder.verify import ImportCheckChoice


def run_steps(
    *,
    name: str,
    requirements: RequirementSet,
    target: Target,
    backend: Backend,
    cache_key: str,
    validate: bool,
    import_check: ImportCheckChoice,
    staging: Path,
    progress: Progress,
) -> tuple[Manifest, dict[str, float]]:
    """Build the layer into staging (tree/, NAME.zip, layer.json); its manifest and each step's
    seconds. An invalid layer raises InvalidLayer with the problems: nothing is left to publish."""
    tree = staging / TREE_DIR
    tree.mkdir(parents=True)
    timings: dict[str, float] = {}

    @contextmanager
    def step(label: str, detail: str = "") -> Iterator[None]:
        progress.step(label, detail)
        start = time.perf_counter()
        yield
        timings[label] = round(time.perf_counter() - start, 3)

    with step(
        "resolve",
        f"{', '.join(requirement_names(requirements)) or requirements.path} with {backend.name} "
        f"for {target.describe()}",
    ):
        resolved = backend.resolve(
            ResolveRequest(requirements=requirements, target=target, staging=tree), progress
        )
    with step("slim", "removing files the runtime can never load"):
        slimmed = slim(tree, target)
    # The zip is written while the tree is audited and imported: zlib and the import
    # check's interpreter each keep a core busy. Only the zip's size waits for both.
    with ThreadPoolExecutor(max_workers=1) as background, step("package", f"{name}.zip"):
        zipping = background.submit(write_zip, tree, staging / f"{name}.zip")
        if validate:
            with step("validate", "static audit and import check, while zipping"):
                report = validate_tree(tree, target, extra=slimmed.problems, import_check=import_check)
        packaged = zipping.result()
    validation = None
    if validate:
        validation = dataclasses.replace(
            report, problems=report.problems + tuple(check_zipped_size(packaged.zipped_bytes))
        )
        if validation.verdict == "invalid":
            raise InvalidLayer(
                f"the {name} layer for {target.describe()} is invalid; it was not published",
                hint="fix the problems listed, or pass --no-validate to publish it unvalidated",
                step="validate",
                report=validation.to_dict(),
            )
    glibc = highest_glibc(tree)
    manifest = Manifest(
        name=name,
        tool_version=__version__,
        runtime=target.runtime,
        arch=target.arch.name,
        os_name=target.os_name,
        runtime_glibc=target.glibc_text,
        highest_glibc_needed=".".join(map(str, glibc)) if glibc else None,
        backend=backend.name,
        cache_key=cache_key,
        requirements_sha256=hashlib.sha256(requirements.key_text.encode()).hexdigest(),
        packages=resolved.distributions,
        sizes=Sizes(unzipped=packaged.unzipped_bytes, zipped=packaged.zipped_bytes),
        slim=SlimSummary(removed_files=len(slimmed.removed), bytes_saved=slimmed.bytes_saved),
        zip=zip_record(packaged.zip_path, packaged.zip_sha256),
        validation=validation,
        files=packaged.files,
        file_sizes=packaged.file_sizes,
    )
    (staging / MANIFEST).write_text(json.dumps(manifest.to_dict(), indent=2, sort_keys=True) + "\n")
    return manifest, timings
