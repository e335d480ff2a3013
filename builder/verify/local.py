"""The import check in a local CPython of the runtime's version, isolated from this machine's packages."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path

from builder.availability import Availability
from builder.host import find_interpreter, host_arch
from builder.layout import LIB_DIR, sys_path_dirs
from builder.runtimes import Target
from builder.verify import result


class LocalInterpreter:
    """A same-version CPython on this machine, isolated: sys.path = layer + stdlib."""

    name = "interpreter"

    def available(self, target: Target) -> Availability:
        if host_arch() != target.arch.name:
            return Availability(
                ok=False, reason=f"this machine is {host_arch()}, the layer is for {target.arch.name}"
            )
        interpreter = find_interpreter(target.version)
        if interpreter is None:
            return Availability(ok=False, reason=f"no local Python {target.version} interpreter found")
        return Availability(ok=True, reason=str(interpreter))

    def check(self, root: Path, target: Target, modules: list[str]) -> result.ImportCheck:
        interpreter = find_interpreter(target.version)
        if interpreter is None:
            return result.ImportCheck(status="not-verified", where="", reason="no local interpreter")
        where = f"local interpreter {interpreter}"
        paths = ":".join(str(d.resolve()) for d in sys_path_dirs(root, target))
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            # Lambda puts /opt/lib on the loader path; the layer's lib/ stands in for it.
            "LD_LIBRARY_PATH": str((root / LIB_DIR).resolve()),
            "LANG": "C.UTF-8",
        }
        with tempfile.TemporaryDirectory(prefix="lambdakit-import-") as scratch:
            out = Path(scratch) / "result.json"
            # -I: ignore PYTHON* env and user site; -S: no site-packages of the host.
            # -B: importing must not write __pycache__ into the tree being zipped at the same time.
            script = [result.IMPORT_SCRIPT, str(out), paths, ""]  # nothing after the standard library
            argv = [str(interpreter), "-I", "-S", "-B", "-c", *script, *modules]
            try:
                proc = subprocess.run(
                    argv,
                    cwd=scratch,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=result.IMPORT_TIMEOUT_S,
                )
            except subprocess.TimeoutExpired:
                written = out.read_text() if out.exists() else None
                return result.timed_out(where, modules, written, result.IMPORT_TIMEOUT_S)
            if not out.exists():
                return result.interpreter_died(
                    where, proc.returncode, (proc.stderr or proc.stdout).splitlines()
                )
            raw = json.loads(out.read_text())
        return result.results_to_check(where, raw["results"])
