"""Where a built layer is published, and the names inside: the layout build writes and validate reads.

OUT/NAME is a symlink to OUT/.builds/NAME-<key>-<id>/, which holds tree/ (the unpacked
layer), NAME.zip and layer.json; OUT/.builds/NAME.lock serialises builds of one layer.
"""

from __future__ import annotations

from pathlib import Path

DEFAULT_OUT = Path("build/layers")
BUILDS_DIR = ".builds"
TREE_DIR = "tree"
MANIFEST = "layer.json"
