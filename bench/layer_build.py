"""Layer build benchmark: lambdakit against the tools people use today, in one run.

`sam build` and plain pip neither validate nor (sam) zip; the "no check" row
shows lambdakit without its audit and import check, for a like-for-like figure.

Prints, for the psycopg2 layer:
  * cold and no-op rebuild times (medians) of `lambdakit build-layer` (uv backend),
    `sam build` of an equivalent SAM layer (BuildMethod python3.11, no container;
    --cached for the rebuild), and a plain `pip install --target` + zip;
  * layer sizes, zipped and unzipped, beside the plain pip result, for
    psycopg2-binary and aws-psycopg2.
All three use the same warm pip download cache, so the times compare the tools,
not the network. Run: .venv/bin/python bench/layer_build.py
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

from builder.units import MB

VENV_BIN = Path(sys.executable).parent
RUNS = 5
SAM_TEMPLATE = """\
AWSTemplateFormatVersion: '2010-09-09'
Transform: AWS::Serverless-2016-10-31
Resources:
  Layer:
    Type: AWS::Serverless::LayerVersion
    Properties:
      ContentUri: layer/
      CompatibleRuntimes: [python3.11]
    Metadata:
      BuildMethod: python3.11
"""


def timed(action: Callable[[], None]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def run(argv: list[str], cwd: Path) -> None:
    subprocess.run(argv, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def tree_size(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def zip_tree(root: Path, dest: Path) -> int:
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(root.parent).as_posix())
    return dest.stat().st_size


def lambdakit(
    work: Path,
    requirement: str,
    runtime: str,
    *,
    force: bool,
    validate: bool = True,
    check: str = "interpreter",
) -> Path:
    (work / "requirements.txt").write_text(requirement + "\n")
    argv = [str(VENV_BIN / "lambdakit"), "build-layer", "bench", "-r", "requirements.txt", "--runtime",
            runtime, "--backend", "uv", "--import-check", check, "--out", "out", "-q"]  # fmt: skip
    argv += ["--force"] if force else []
    argv += [] if validate else ["--no-validate"]
    subprocess.run(argv, cwd=work, check=False, stdout=subprocess.DEVNULL)
    return work / "out" / "bench"


def plain_pip(work: Path, requirement: str) -> tuple[int, int]:
    target = work / "pip" / "python"
    shutil.rmtree(target.parent, ignore_errors=True)
    run([sys.executable, "-m", "pip", "install", "-q", "--target", str(target), requirement], work)
    return tree_size(target), zip_tree(target, work / "pip.zip")


def sam_build(work: Path, requirement: str, *, cached: bool) -> None:
    (work / "layer").mkdir(exist_ok=True)
    (work / "layer" / "requirements.txt").write_text(requirement + "\n")
    (work / "template.yaml").write_text(SAM_TEMPLATE)
    run([str(VENV_BIN / "sam"), "build", *(["--cached"] if cached else []), "--region", "us-east-1"], work)


def mb(size: float) -> str:
    return f"{size / MB:6.1f} MB"


def main() -> None:
    requirement = "psycopg2-binary==2.9.11"
    with tempfile.TemporaryDirectory(prefix="lambdakit-bench-") as scratch:
        work = Path(scratch)
        # Warm pip's download cache once so no tool pays for the network.
        plain_pip(work, requirement)
        plain_pip(work, "aws-psycopg2==1.3.8")

        def median(action: Callable[[], object]) -> float:
            return statistics.median(timed(action) for _ in range(RUNS))

        def pair(build: Callable[[bool], object]) -> tuple[float, float]:
            build(True)  # warms every cache the tool has before the measured runs
            return median(lambda: build(True)), median(lambda: build(False))

        times = {
            "lambdakit": pair(lambda force: lambdakit(work, requirement, "python3.11", force=force)),
            "lambdakit, image check": pair(
                lambda force: lambdakit(work, requirement, "python3.11", force=force, check="auto")
            ),
            "lambdakit, no check": pair(
                lambda force: lambdakit(work, requirement, "python3.11", force=force, validate=False)
            ),
            "sam build": pair(lambda force: sam_build(work, requirement, cached=not force)),
            "pip --target + zip": pair(lambda force: plain_pip(work, requirement)),
        }
        print(f"psycopg2 layer build time, python3.11 x86_64 (seconds, median of {RUNS})")
        print(f"{'tool':<24} {'cold':>8} {'no-op':>8} {'cold / sam build':>17} {'no-op / sam build':>18}")
        sam_cold, sam_noop = times["sam build"]
        for tool, (cold, noop) in times.items():
            print(f"{tool:<24} {cold:8.2f} {noop:8.3f} {cold / sam_cold:16.2f}x {noop / sam_noop:17.3f}x")
        print(
            "lambdakit: uv resolve, slim, zip, static audit, import check in a local python3.11 "
            "(image check: in the runtime image when Docker has it); sam build: BuildMethod python3.11, "
            "no container, --cached for the no-op"
        )

        print("\nlayer size (unzipped / zipped), python3.10 x86_64")
        for req in (requirement, "aws-psycopg2==1.3.8"):
            out = lambdakit(work, req, "python3.10", force=True)
            ours_unzipped = tree_size(out / "tree")
            ours_zipped = (out / "bench.zip").stat().st_size
            pip_unzipped, pip_zipped = plain_pip(work, req)
            print(
                f"{req:<24} lambdakit {mb(ours_unzipped)} / {mb(ours_zipped)}   "
                f"plain pip {mb(pip_unzipped)} / {mb(pip_zipped)}   "
                f"ratio {pip_unzipped / ours_unzipped:.1f}x / {pip_zipped / ours_zipped:.1f}x"
            )


if __name__ == "__main__":
    main()
