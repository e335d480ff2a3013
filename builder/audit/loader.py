"""How glibc's loader would resolve a layer's DT_NEEDED names on Lambda, played over the files
without running anything: RPATH and RUNPATH with $ORIGIN, Lambda's LD_LIBRARY_PATH, the runtime's
own libraries (base-libraries.json).

The audit and slim both ask it: the audit for what cannot be found, slim for what is never loaded.
"""

from __future__ import annotations

import posixpath
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

from builder.audit.base_libraries import base_libraries
from builder.audit.elf import ElfFacts
from builder.audit.tree import LayerTree
from builder.layout import LD_LIBRARY_PATH, OPT_DIR, TASK_ROOT
from builder.runtimes import Target

# On Lambda's LD_LIBRARY_PATH the runtime's own directories come first (they hold what
# base-libraries.json lists), the function's /var/task is not the layer's to rely on, and the
# layer's lib/ comes last.
LAYER_LIBRARY_PATH = LD_LIBRARY_PATH[-1]


def fits(facts: ElfFacts, target: Target) -> bool:
    """Whether the target's loader accepts the file: its class and machine."""
    return target.arch.runs(facts.machine, facts.elf_class)


def is_bundled(rel: str) -> bool:
    """Whether the file sits in a <package>.libs/ folder, where auditwheel grafts the libraries a
    wheel's extensions need (renamed libpq-9b38f5e3.so.5.17, say)."""
    return any(part.endswith(".libs") for part in rel.split("/")[:-1])


@dataclass(frozen=True)
class Search:
    """Where the loader found one needed name, or where it looked in vain."""

    found: str | None = None
    in_runtime: bool = False
    tried: tuple[str, ...] = ()
    wrong_arch: tuple[str, ...] = ()


@dataclass(frozen=True)
class Lookup:
    """One DT_NEEDED name met on a walk: chain[0] needs it; chain[1:] loaded chain[0], nearest first."""

    name: str
    chain: tuple[str, ...]
    search: Search


class Loader:
    """glibc's search for a DT_NEEDED name, over one layer tree for one target."""

    def __init__(self, tree: LayerTree, target: Target) -> None:
        self.tree = tree
        self.target = target
        self.base = base_libraries(target)

    def facts(self, rel: str) -> ElfFacts:
        facts = self.tree.elf(rel)
        assert isinstance(facts, ElfFacts), "only readable ELF files are ever loaded"
        return facts

    def walk(self, start: str) -> Iterator[Lookup]:
        """Every name the loader resolves when something outside the layer loads start (a readable
        ELF file), breadth first through what it finds, each with where it was found or looked for."""
        # What each loaded object answers to (its soname, the names it was asked for), as glibc
        # reuses an object already loaded instead of searching again.
        loaded: dict[str, str] = {}
        chains: dict[str, tuple[str, ...]] = {start: (start,)}
        queue = deque([start])
        while queue:
            rel = queue.popleft()
            facts = self.facts(rel)
            if facts.soname:
                loaded.setdefault(facts.soname, rel)
            for name in facts.needed:
                if name in loaded:
                    continue
                search = self.search(name, chains[rel])
                if search.found is not None:
                    loaded[name] = search.found
                    if search.found not in chains:
                        chains[search.found] = (search.found, *chains[rel])
                        queue.append(search.found)
                yield Lookup(name, chains[rel], search)

    def search(self, name: str, chain: tuple[str, ...]) -> Search:
        """Where `name` is found when chain[0] needs it; chain[1:] are the objects that loaded chain[0]."""
        tried: list[str] = []
        wrong: list[str] = []
        leaf = posixpath.basename(name)

        def look(directories: list[str]) -> str | None:
            for directory in directories:
                tried.append(directory)
                rel = self.tree.file_at(posixpath.join(directory, leaf))
                if rel is None:
                    continue
                facts = self.tree.elf(rel)
                # The loader skips a file of the wrong class or machine and keeps looking.
                if isinstance(facts, ElfFacts) and fits(facts, self.target):
                    return rel
                wrong.append(rel)
            return None

        def result(found: str | None = None, in_runtime: bool = False) -> Search:
            return Search(found, in_runtime, tuple(dict.fromkeys(tried)), tuple(dict.fromkeys(wrong)))

        # A name with a slash is opened as a path, relative to the working directory (/var/task).
        if "/" in name:
            return result(look([posixpath.dirname(posixpath.normpath(posixpath.join(TASK_ROOT, name)))]))
        needer = self.facts(chain[0])
        # Without a RUNPATH, the RPATHs of the needer and then of each object that loaded it are
        # searched; an object with a RUNPATH has its RPATH ignored (glibc's elf/dl-load.c).
        if not needer.runpath:
            for rel in chain:
                facts = self.facts(rel)
                if not facts.runpath and (found := look(_expand(facts.rpath, rel))):
                    return result(found)
        if name in self.base:
            return result(in_runtime=True)
        if found := look([LAYER_LIBRARY_PATH]):
            return result(found)
        return result(look(_expand(needer.runpath, chain[0])))


def _expand(directories: tuple[str, ...], rel: str) -> list[str]:
    """RPATH or RUNPATH entries of the layer file rel as absolute paths: $ORIGIN is its folder under
    /opt, and a relative entry is taken from the working directory (/var/task), as glibc does."""
    origin = posixpath.join(OPT_DIR, posixpath.dirname(rel))
    expanded = []
    for directory in directories:
        directory = directory.replace("${ORIGIN}", origin).replace("$ORIGIN", origin)
        expanded.append(posixpath.normpath(posixpath.join(TASK_ROOT, directory)))
    return expanded


def entry_points(tree: LayerTree, target: Target) -> list[str]:
    """The files something outside the layer loads: every ELF no other ELF of the layer needs.

    Libraries auditwheel grafted into <package>.libs/ are only ever loaded as dependencies of
    the package's extensions, so they are no entry points even when their user is gone.
    """
    elves = {rel: facts for rel, facts in tree.elves() if fits(facts, target)}
    needed = {name for facts in elves.values() for name in facts.needed}
    return sorted(
        rel
        for rel, facts in elves.items()
        if posixpath.basename(rel) not in needed and facts.soname not in needed and not is_bundled(rel)
    )
