"""Reading a requirements file for what lambdakit itself needs: its text, with the files it
includes, for the cache key; its requirement lines, for messages and the Docker backend's
system packages; the options it sets. The resolver (uv, pip) is the one that parses it for
real: hashes, includes, continuations, URLs and index options are its business.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from builder.errors import UsageError

# -r/-c: files read too, relative to the including file (as pip and uv do).
_INCLUDE = re.compile(r"^(-r|--requirement|-c|--constraint)(?:\s+|=)(\S+)")
# A comment starts a line or follows white space (a space or a tab).
_COMMENT = re.compile(r"(^|\s)#.*$")
# Options that make a wheels-only resolver build from source.
SOURCE_BUILD_OPTIONS = ("--no-binary", "-e", "--editable")


@dataclass(frozen=True, kw_only=True)
class RequirementSet:
    path: Path
    text: str  # the file as read
    included: tuple[tuple[Path, str], ...]  # the files its -r/-c lines include, at any depth, as read
    # Its requirement lines without per-requirement options (--hash): names, specifiers, URLs.
    requirements: tuple[str, ...]
    options: tuple[str, ...]  # the options its lines set, e.g. --index-url, --no-binary

    @property
    def key_text(self) -> str:
        """All the text that decides what is installed: the build cache key is made of it."""
        return "\n".join([self.text, *(f"# {path}\n{text}" for path, text in self.included)])

    @property
    def is_lock(self) -> bool:
        return is_lock_file(self.path)


def is_lock_file(path: Path) -> bool:
    """A PEP 751 lock file (pylock.toml, pylock.NAME.toml): versions and hashes resolved elsewhere."""
    return re.fullmatch(r"pylock(\.[^.]+)?\.toml", path.name) is not None


def read_requirements(path: Path) -> RequirementSet:
    if not path.is_file():
        raise UsageError(
            f"requirements file {path} does not exist",
            hint="create it, or pass an existing one with -r/--requirements",
        )
    if is_lock_file(path):
        return _read_lock(path)
    texts: list[tuple[Path, str]] = []
    requirements: list[str] = []
    options: list[str] = []
    _read(path, texts, requirements, options, seen=set())
    if not requirements:
        raise UsageError(
            f"{path} lists no requirements", hint="add at least one package, e.g. psycopg2-binary"
        )
    (_, text), *included = texts
    return RequirementSet(
        path=path,
        text=text,
        included=tuple(included),
        requirements=tuple(requirements),
        options=tuple(options),
    )


def _read(
    path: Path,
    texts: list[tuple[Path, str]],
    requirements: list[str],
    options: list[str],
    *,
    seen: set[Path],
    constraints: bool = False,
) -> None:
    resolved = path.resolve()
    if resolved in seen:
        return  # an include cycle: the resolver reports it; the text is already in the key
    seen.add(resolved)
    text = _decode(path)
    texts.append((path, text))
    for line in _logical_lines(text):
        if match := _INCLUDE.match(line):
            included = path.parent / match.group(2)
            if not included.is_file():
                raise UsageError(
                    f"{path}: includes {match.group(2)}, which does not exist (looked for {included})",
                    hint="includes are relative to the file that names them",
                )
            # A constraints file limits versions; it asks for nothing.
            is_constraint = constraints or match.group(1) in ("-c", "--constraint")
            _read(included, texts, requirements, options, seen=seen, constraints=is_constraint)
        elif line.startswith("-"):
            options.append(line.split()[0].split("=")[0])
        elif not constraints:
            # Per-requirement options (--hash=...) follow the requirement.
            requirements.append(re.split(r"\s+--?[a-z]", line, maxsplit=1)[0])


def _decode(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")  # a byte order mark is tolerated, as pip does
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise UsageError(
            f"{path}:{line}: byte {raw[err.start]:#04x} is not UTF-8",
            hint="save the file as UTF-8 (requirements files are text)",
        ) from err


def _logical_lines(text: str) -> list[str]:
    """Lines with backslash continuations joined and comments removed, as pip reads them."""
    lines: list[str] = []
    pending = ""
    for raw in text.splitlines():
        if raw.endswith("\\"):
            pending += raw[:-1] + " "
            continue
        line = _COMMENT.sub("", pending + raw).strip()
        pending = ""
        if line:
            lines.append(line)
    if pending.strip():
        lines.append(_COMMENT.sub("", pending).strip())
    return lines


def _read_lock(path: Path) -> RequirementSet:
    text = _decode(path)
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise UsageError(f"{path} is not valid TOML: {err}", hint="regenerate the lock file") from err
    packages = document.get("packages")
    if not isinstance(packages, list) or not packages:
        raise UsageError(f"{path} locks no packages", hint="a pylock.toml lists [[packages]]")
    locked = tuple(
        f"{p['name']}=={p['version']}" if p.get("version") else str(p["name"])
        for p in packages
        if isinstance(p, dict) and p.get("name")
    )
    return RequirementSet(path=path, text=text, included=(), requirements=locked, options=())
