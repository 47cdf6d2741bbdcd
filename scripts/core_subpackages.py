"""Move streamrec.core's flat modules into one sub-package per concept and rewrite every import.

The layout of docs/architecture.md (issue 24): ``ids`` and ``domains`` stay on the ground
floor; events, window, scoring, snapshot and catalogue each get a sub-package. The move is
``git mv``; the rewrite is mechanical and idempotent, so it can be run again after merging a
branch written against the flat layout:

    python scripts/core_subpackages.py            # move (if not yet moved) and rewrite
    python scripts/core_subpackages.py --rewrite  # rewrite imports and paths only

It rewrites, in ``services/``, ``tests/``, ``bench/``, ``demo/`` and ``docs/``: absolute and
relative imports of the old modules (``from .foldin import x``, ``from . import foldin``,
``from ..core.manifest import x``, ``from streamrec.core.model import x``), dotted names in
strings (``streamrec.core.training``) and paths in prose (``core/blend.py``). A module of
``core/`` that the table does not place stops the script: place it first.
"""

from __future__ import annotations

import io
import re
import subprocess
import sys
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORE = ROOT / "services" / "streamrec" / "core"
PREFIX = "streamrec.core"

#: Old module (in core/) -> new module (relative to core). ``events`` becomes its package's
#: public face (its ``__init__``), so ``streamrec.core.events`` keeps working as it was.
MOVES = {
    "ids": "ids",
    "domains": "domains",
    "origins": "origins",  # a value domain of settings (issue 23a): the ground floor
    "events": "events",
    "event": "events.event",
    "codec": "events.codec",
    "batch": "events.batch",
    "feedback": "events.feedback",
    "erasure": "events.erasure",
    "erasurekey": "events.erasurekey",
    "strictjson": "events.strictjson",
    "eventids": "events.eventids",
    "window": "window.sliding",
    "windowdata": "window.contents",
    "scorer": "scoring.scorer",
    "als": "scoring.als",
    "ease": "scoring.itemitem",
    "blend": "scoring.blend",
    "recency": "scoring.recency",
    "foldin": "scoring.foldin",
    "ranking": "scoring.ranking",
    "recommend": "scoring.rules",
    "training": "scoring.training",
    "model": "scoring.model",
    "modeltypes": "scoring.types",
    "hits": "scoring.hits",
    "negatives": "scoring.negatives",
    "snapshot": "snapshot.arrays",
    "snapshotlayout": "snapshot.layout",
    "manifest": "snapshot.manifest",
    "trainingstatus": "snapshot.trainingstatus",
    "catalog": "catalog.records",
    "itemfilter": "catalog.filters",
}
#: New packages and their docstrings.
PACKAGES = {
    "events": None,  # events.py is its __init__
    "window": "The sliding window: events in, the user x item matrix and its contents out.",
    "scoring": "Scoring: the Scorer protocol and its models (ALS fold-in, item-item), the blend "
               "of their scores, ranking over arrays, and fitting.",
    "snapshot": "Snapshots as data: layout, manifest and training status (the files are "
                "adapters/snapshotfiles.py).",
    "catalog": "The item catalogue: records, and the filters that turn them into masks.",
}
DIRS = ("services", "tests", "bench", "demo", "docs")


def new_file(old: str) -> Path:
    new = MOVES[old]
    if new == "events":
        return CORE / "events" / "__init__.py"
    return CORE.joinpath(*new.split(".")).with_suffix(".py")


def move() -> dict[Path, str]:
    """``git mv`` each flat module to its new home; returns new path -> old module name."""
    flat = sorted(p.stem for p in CORE.glob("*.py") if p.stem != "__init__")
    unplaced = [m for m in flat if m not in MOVES]
    if unplaced:
        sys.exit(f"core modules with no place in MOVES: {unplaced}")
    for package, doc in PACKAGES.items():
        (CORE / package).mkdir(exist_ok=True)
        if doc is not None and not (CORE / package / "__init__.py").exists():
            body = "\n".join(_split(f'"""{doc}', ""))
            (CORE / package / "__init__.py").write_text(f'{body}\n"""\n')
            subprocess.run(["git", "add", str(CORE / package / "__init__.py")], check=True,
                           cwd=ROOT)
    moved = {}
    for old in flat:
        target = new_file(old)
        if target != CORE / f"{old}.py":
            subprocess.run(["git", "mv", str(CORE / f"{old}.py"), str(target)], check=True,
                           cwd=ROOT)
            moved[target] = old
    return moved


def _module_of(path: Path) -> tuple[str, bool]:
    """The dotted module of a file under services/, and whether it is a package __init__."""
    rel = path.relative_to(ROOT / "services").with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        return ".".join(parts[:-1]), True
    return ".".join(parts), False


def _new_dotted(old_dotted: str) -> str:
    """``streamrec.core.X[.rest]`` with X moved; anything else unchanged."""
    if not old_dotted.startswith(PREFIX + "."):
        return old_dotted
    name, _, rest = old_dotted[len(PREFIX) + 1:].partition(".")
    if name not in MOVES or (rest and name in PACKAGES):  # already a package path
        return old_dotted
    return f"{PREFIX}.{MOVES[name]}" + (f".{rest}" if rest else "")


def _relative(from_package: str, target: str) -> str:
    """``target`` as a relative import from inside ``from_package``."""
    a, b = from_package.split("."), target.split(".")
    common = 0
    while common < min(len(a), len(b)) and a[common] == b[common]:
        common += 1
    return "." * (len(a) - common + 1) + ".".join(b[common:])


def _resolve(package: str, dots: int, module: str) -> str:
    base = package.split(".")
    base = base[: len(base) - (dots - 1)] if dots > 1 else base
    return ".".join(base + ([module] if module else []))


_FROM = re.compile(r"^(?P<indent>[ \t]*)from (?P<dots>\.*)(?P<module>[\w.]*) import (?P<rest>.*)$",
                   re.M)


def rewrite_imports(text: str, old_module: str | None, old_is_pkg: bool,
                    new_module: str | None, new_is_pkg: bool) -> str:
    """Rewrite every ``from X import ...`` line of a file that was ``old_module`` and is now
    ``new_module`` (None: a file outside services/, absolute imports only)."""
    old_pkg = old_module if old_is_pkg else (old_module or "").rpartition(".")[0]
    new_pkg = new_module if new_is_pkg else (new_module or "").rpartition(".")[0]

    def one(m: re.Match[str]) -> str:
        dots, module, rest, indent = m["dots"], m["module"], m["rest"], m["indent"]
        if not dots:
            if not module.startswith(PREFIX):
                return m[0]
            target = module
        else:
            if old_module is None:
                return m[0]
            target = _resolve(old_pkg, len(dots), module)
        if target == PREFIX:
            # ``from streamrec.core import a, b`` / ``from . import a`` in core: modules by name.
            return _names_from_package(m, target, new_pkg, bool(dots))
        new_target = _new_dotted(target)
        short = target[len(PREFIX) + 1:] if target.startswith(PREFIX + ".") else ""
        if short in PACKAGES and MOVES.get(short, short) != short:
            # The old module or the new package of that name? The package when every name
            # imported is one of its modules (``from streamrec.core.snapshot import layout``).
            imported = [n.split(" as ")[0].strip() for n in rest.split("#")[0].strip("() \n")
                        .split(",") if n.strip()]
            if imported and all((CORE / short / f"{n}.py").exists() for n in imported):
                new_target = target
        if dots:
            return f"{indent}from {_relative(new_pkg, new_target)} import {rest}"
        return f"{indent}from {new_target} import {rest}"

    return _FROM.sub(one, text)


def _names_from_package(m: re.Match[str], package: str, new_pkg: str, relative: bool) -> str:
    """``from <core> import a, b as c`` where a, b are core modules: one line per new home."""
    indent, rest = m["indent"], m["rest"]
    comment = ""
    if "#" in rest:
        rest, _, comment = rest.partition("#")
        comment = "  #" + comment
    names = [n.strip() for n in rest.strip().strip("()").split(",") if n.strip()]
    lines = []
    for n in names:
        name, _, alias = (x.strip() for x in n.partition(" as "))
        if package != PREFIX or name not in MOVES:
            lines.append((package, n))
            continue
        new = f"{PREFIX}.{MOVES[name]}"
        home, _, base = new.rpartition(".")
        local = alias or name
        lines.append((home, base if base == local else f"{base} as {local}"))
    out = []
    for home, n in lines:
        where = _relative(new_pkg, home) if relative else home
        out.append(f"{indent}from {where} import {n}{comment}")
    return "\n".join(out)


_DOTTED = re.compile(r"(?<![\w.])streamrec\.core\.(\w+)(?![\w])")
_IMPORT_LINE = re.compile(r"^\s*(from|import) [\w.]+")
_PATH = re.compile(r"(?<!\w)core/(\w+)\.py\b")


def rewrite_names(text: str) -> str:
    """Dotted module names and ``core/x.py`` paths in strings, comments and prose."""
    def dotted(m: re.Match[str]) -> str:
        name = m[1]
        if name not in MOVES:
            return m[0]
        after = re.match(r"\.(\w+)", m.string[m.end():])
        if name in PACKAGES and after and (CORE / name / f"{after[1]}.py").exists():
            return m[0]  # already a module of the new package
        return f"{PREFIX}.{MOVES[name]}"

    def path(m: re.Match[str]) -> str:
        name = m[1]
        if name not in MOVES:
            return m[0]
        new = MOVES[name]
        return "core/events/__init__.py" if new == "events" else f"core/{new.replace('.', '/')}.py"

    # Import lines are rewrite_imports' (a package path there is already the new one).
    return "".join(
        line if _IMPORT_LINE.match(line) else _PATH.sub(path, _DOTTED.sub(dotted, line))
        for line in text.splitlines(keepends=True))


LIMIT = 100


def _split(body: str, prefix: str) -> list[str]:
    """``body`` cut at spaces into lines of at most LIMIT, continued with ``prefix``."""
    out = []
    while len(body) > LIMIT:
        cut = body.rfind(" ", len(prefix) + 1, LIMIT + 1)
        if cut < 0:
            break
        out.append(body[:cut].rstrip())
        body = prefix + body[cut + 1:]
    return [*out, body]


def wrap_long_lines(text: str, before: str) -> str:
    """Rewrap the prose lines a longer path pushed past LIMIT (lines not in ``before``):
    comments (a trailing one moves above its code; a pragma such as ``# type: ignore`` or
    ``# noqa`` stays) and docstring lines. Code is left as it is (ruff names it)."""
    old = set(before.splitlines())
    lines = text.splitlines()
    in_string: set[int] = set()
    comments: dict[int, int] = {}
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type == tokenize.STRING:
                in_string.update(range(tok.start[0], tok.end[0] + 1))
            elif tok.type == tokenize.COMMENT:
                comments[tok.start[0]] = tok.start[1]
    except (tokenize.TokenError, SyntaxError):
        return text
    out: list[str] = []
    for number, body in enumerate(lines, 1):
        if len(body) <= LIMIT or body in old or re.search(r"#\s*(type:|noqa|pragma)", body):
            out.append(body)
            continue
        indent = body[: len(body) - len(body.lstrip())]
        stripped = body.lstrip()
        if number in comments and comments[number] > len(indent):
            at = comments[number]
            out.extend(_split(indent + body[at:], indent + "# "))
            out.append(body[:at].rstrip())
        elif stripped.startswith("#"):
            out.extend(_split(body, indent + "# "))
        elif number in in_string:
            out.extend(_split(body, indent))
        else:
            out.append(body)
    return "\n".join(out) + ("\n" if text.endswith("\n") else "")


def rewrite(moved: dict[Path, str]) -> None:
    """Rewrite every file; ``moved`` (new path -> old module name) says where the files moved
    in this run were, for their relative imports."""
    for top in DIRS:
        for path in sorted((ROOT / top).rglob("*")):
            if path.suffix not in (".py", ".md") or ".venv" in path.parts or not path.is_file():
                continue
            text = path.read_text(encoding="utf-8")
            new = text
            if path.suffix == ".py":
                old_module = new_module = None
                old_is_pkg = new_is_pkg = False
                if top == "services":
                    new_module, new_is_pkg = _module_of(path)
                    old_name = moved.get(path)
                    if old_name is not None:
                        old_module, old_is_pkg = f"{PREFIX}.{old_name}", False
                    else:
                        old_module, old_is_pkg = new_module, new_is_pkg
                new = rewrite_imports(new, old_module, old_is_pkg, new_module, new_is_pkg)
            new = rewrite_names(new)
            if path.suffix == ".py" and new != text:
                new = wrap_long_lines(new, text)
            if new != text:
                path.write_text(new, encoding="utf-8")


def main() -> int:
    moved = {} if "--rewrite" in sys.argv[1:] else move()
    rewrite(moved)
    return 0


if __name__ == "__main__":
    sys.exit(main())
