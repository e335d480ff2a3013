"""The import check in the runtime's own image: the closest thing to Lambda short of Lambda.

The layer is mounted read-only at /opt, as Lambda mounts layers, and the container
has no network.
"""

from __future__ import annotations

import json
from pathlib import Path

from builder.availability import Availability
from builder.docker import container, images
from builder.layout import LANG_DIR, OPT_DIR, RUNTIME_DIR, sys_path_dirs
from builder.runtimes import Target
from builder.verify import result


class RuntimeImageChecker:
    """The layer at /opt of a container of target.runtime_image, with the runtime's own packages after it."""

    name = "runtime-image"

    def available(self, target: Target) -> Availability:
        return images.image_availability(target.runtime_image, target.arch.docker_platform)

    def check(self, root: Path, target: Target, modules: list[str]) -> result.ImportCheck:
        client = container.connect()
        image = images.require_image(client, target.runtime_image)
        where = f"image {image.describe()}"
        result_file = "/tmp/lambdakit-imports.json"
        paths = ":".join(f"{OPT_DIR}/{d.relative_to(root).as_posix()}" for d in sys_path_dirs(root, target))
        # -I: only the layer and the image's own Python decide what imports (no PYTHON*, no user site).
        python = f"{LANG_DIR}/bin/python{target.version}"
        # The runtime's own packages (boto3, awslambdaric) come after the layer, as on Lambda.
        argv = [python, "-I", "-c", result.IMPORT_SCRIPT, result_file, paths, RUNTIME_DIR, *modules]
        output: list[str] = []
        with container.Container(
            image=target.runtime_image,
            entrypoint=argv[:1],
            command=argv[1:],
            docker_platform=target.arch.docker_platform,
            mounts=[container.Mount(source=root, target=OPT_DIR)],
            client=client,
        ) as checker:
            status, was_cut = checker.run(output.append, timeout_s=result.IMPORT_TIMEOUT_S)
            raw = checker.read_file(result_file)
        if was_cut:
            return result.timed_out(where, modules, raw, result.IMPORT_TIMEOUT_S)
        if raw is None:
            return result.interpreter_died(where, status, output)
        return result.results_to_check(where, json.loads(raw)["results"])
