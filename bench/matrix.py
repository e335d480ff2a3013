"""The twelve-target matrix: one `build-layer --runtime all --arch all` against a loop over the targets.

The loop is what people do today: one `lambdakit build-layer` per runtime and arch,
one after the other. Both build the psycopg2 layer into fresh output folders with the
same warm uv cache and the same stand-in images, so the times compare the two ways of
running the targets, not the network. Also prints what each target was proven in.
Run: .venv/bin/python bench/matrix.py   (needs Docker and the stand-ins: see the README)
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from builder import runtimes

ROOT = Path(__file__).resolve().parents[1]
LAMBDAKIT = [sys.executable, "-m", "builder", "build-layer", "psycopg2", "-r",
             str(ROOT / "layers" / "psycopg2" / "requirements.txt")]  # fmt: skip


def loop(out: Path) -> list[str]:
    verdicts = []
    for t in runtimes.all_targets():
        argv = [
            *LAMBDAKIT,
            "--runtime",
            t.runtime,
            "--arch",
            t.arch.name,
            "--out",
            str(out / t.runtime / t.arch.name),
        ]
        proc = subprocess.run([*argv, "--json"], capture_output=True, text=True)
        verdicts.append(json.loads(proc.stdout)["manifest"]["validation"]["verdict"])
    return verdicts


def matrix(out: Path) -> list[dict]:
    proc = subprocess.run([*LAMBDAKIT, "--runtime", "all", "--arch", "all", "--out", str(out), "--json"],
                          capture_output=True, text=True)  # fmt: skip
    return json.loads(proc.stdout)["targets"]


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        matrix(Path(scratch) / "warm-up")  # fills uv's cache for every target; not timed
        started = time.perf_counter()
        looped = loop(Path(scratch) / "loop")
        loop_s = time.perf_counter() - started
        started = time.perf_counter()
        targets = matrix(Path(scratch) / "matrix")
        matrix_s = time.perf_counter() - started
    print(f"{'target':<18} {'verdict':<13} proven in (or why not)")
    for row in targets:
        print(f"{row['runtime'] + ' ' + row['arch']:<18} {row['verdict']:<13} {row['where'][:110]}")
    valid = sum(row["verdict"] == "valid" for row in targets)
    print(f"\nsequential loop: {loop_s:.1f} s, {looped.count('valid')} of 12 valid")
    print(f"matrix:          {matrix_s:.1f} s, {valid} of 12 valid ({matrix_s / loop_s:.2f}x the loop)")


if __name__ == "__main__":
    main()
