"""Copy into LAYER/lib the shared libraries the layer's binaries load that the runtime lacks.

Runs INSIDE the build image, by Dockerfile.build, so it may only use the standard
library of the oldest supported Python (3.9). Usage:

    python bundle_libs.py LAYER PROVIDED

PROVIDED lists, one per line, the sonames the Lambda runtime already has (the
runtime catalogue's base libraries); those are left to the runtime. Everything
else a binary in LAYER needs and that is not already in LAYER is copied to
LAYER/lib under its soname, which Lambda puts on LD_LIBRARY_PATH as /opt/lib.
`ldd` resolves the dependencies the way the build image's loader does, and
lists the dependencies of dependencies too.
"""

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator

# "libpq.so.5 => /usr/lib64/libpq.so.5 (0x...)" or "libfoo.so.1 => not found"
_LDD_LINE = re.compile(r"^\s*(\S+)\s+=>\s+(\S+)")
# glibc's own libraries: always the runtime's, whatever the catalogue says.
_GLIBC = re.compile(
    r"^(ld-linux.*|libc|libm|libmvec|libpthread|libdl|librt|libutil|libresolv|libanl|libBrokenLocale"
    r"|libthread_db|libnss_\w+|libc_malloc_debug)\.so(\.\d+)*$"
)


def _is_elf(path: str) -> bool:
    with open(path, "rb") as handle:
        return handle.read(4) == b"\x7fELF"


def _binaries(layer: str) -> Iterator[str]:
    for directory, _, files in os.walk(layer):
        for name in files:
            path = os.path.join(directory, name)
            if not os.path.islink(path) and _is_elf(path):
                yield path


def needed_libraries(layer: str, provided: set[str]) -> tuple[dict[str, str], set[str]]:
    """(soname -> path in the build image, sonames ldd could not find) for LAYER's binaries."""
    inside = os.path.realpath(layer) + os.sep
    found: dict[str, str] = {}
    missing: set[str] = set()
    for binary in _binaries(layer):
        proc = subprocess.run(["ldd", binary], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for line in proc.stdout.decode("utf-8", "replace").splitlines():
            match = _LDD_LINE.match(line)
            if match is None:
                continue
            soname, where = match.groups()
            if soname in provided or _GLIBC.match(soname):
                continue
            if where == "not":
                missing.add(soname)
            elif not os.path.realpath(where).startswith(inside):
                found[soname] = where
    return found, missing


def main(layer: str, provided_file: str) -> int:
    with open(provided_file) as handle:
        provided = set(handle.read().split())
    found, missing = needed_libraries(layer, provided)
    lib_dir = os.path.join(layer, "lib")
    for soname, where in sorted(found.items()):
        os.makedirs(lib_dir, exist_ok=True)
        shutil.copyfile(where, os.path.join(lib_dir, soname))
        print(f"lambdakit: bundled {soname} from {os.path.realpath(where)}")
    for soname in sorted(missing - set(found)):
        print(f"lambdakit: warning: {soname} is needed but not in the build image either", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
