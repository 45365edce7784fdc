"""The digest of the code behind a job: its script and every gensynth module the script imports, transitively.

Found by reading the files' import statements (``ast``), without importing anything, so the
Snakefile computes it at parse time (each file read once). Each rule's shell command ends in
``# code <digest>``; Snakemake reruns a job whose command changed ("Code has changed since last
execution"), so editing a script or a module it uses reruns exactly the jobs that code makes.
Any edit counts, comments included.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import re
from pathlib import Path

PACKAGE = "gensynth"
EXPORTS = "_EXPORTS"  # the name -> submodule table of a package's lazy exports (gensynth.lazy)
SCRIPT_IN_COMMAND = re.compile(r"\bscripts/(\w+)\.py\b")


@functools.cache
def module_file(package_root: Path, dotted: str) -> Path | None:
    """The file of ``gensynth.x.y`` (a module, or a package's ``__init__.py``), or None."""
    base = package_root.joinpath(*dotted.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def import_statements(tree: ast.Module):
    """Every import statement of a module, top level or nested. Imports are statements, so only statement
    blocks are searched, not the expressions that make up most of a tree."""
    todo = [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        for block in ("body", "orelse", "finalbody", "handlers", "cases"):
            todo.extend(getattr(node, block, None) or ())


@functools.cache
def package_exports(package_root: Path, dotted: str) -> dict[str, str]:
    """A package's lazy exports (gensynth.lazy): the ``_EXPORTS`` literal of its ``__init__``, name -> submodule.
    ``from package import name`` runs that submodule, though no import statement names it."""
    init = package_root.joinpath(*dotted.split("."), "__init__.py")
    if not init.is_file():
        return {}
    for node in ast.parse(init.read_text(encoding="utf-8"), filename=str(init)).body:
        if isinstance(node, ast.Assign) and any(isinstance(target, ast.Name) and target.id == EXPORTS for target in node.targets):
            return ast.literal_eval(node.value)
    return {}


@functools.cache  # scripts share most modules: each file is read once per parse
def imported_modules(path: Path, package_root: Path) -> frozenset[str]:
    """Dotted names of the gensynth modules ``path`` imports (``from pkg import name`` counts ``pkg.name``
    when that is a module), with every package on the way (their ``__init__`` runs on import)."""
    own = None
    if path.is_relative_to(package_root / PACKAGE):
        parts = path.relative_to(package_root).with_suffix("").parts
        own = parts[:-1] if parts[-1] == "__init__" else parts
    names = set()
    for node in import_statements(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the importing module's package
                if own is None:
                    continue
                anchor = own[: len(own) - node.level] if path.name != "__init__.py" else own[: len(own) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
            exports = package_exports(package_root, base) if base.split(".")[0] == PACKAGE else {}
            names.update(f"{base}.{exports[alias.name]}" for alias in node.names if alias.name in exports)
    found = set()
    for name in names:
        if name.split(".")[0] != PACKAGE:
            continue
        parts = name.split(".")
        found.update(".".join(parts[:i]) for i in range(1, len(parts) + 1) if module_file(package_root, ".".join(parts[:i])))
    return frozenset(found)


@functools.cache
def code_files(script: Path, package_root: Path) -> tuple[Path, ...]:
    """The script and the files of every gensynth module it reaches through imports."""
    seen, todo = set(), [script]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        todo.extend(module_file(package_root, name) for name in imported_modules(path, package_root))
    return tuple(sorted(seen))


@functools.cache
def code_digest(script: Path, package_root: Path) -> str:
    digest = hashlib.sha256()
    for path in code_files(script, package_root):  # names relative to the checkout, so a moved checkout keeps its digests
        digest.update(f"{path.relative_to(package_root.parent)}\0".encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:16]


def stamp_command(command: str, workdir: Path, package_root: Path) -> str:
    """``command`` with ``  # code <digest>`` of the script it runs appended (unchanged without a script)."""
    match = SCRIPT_IN_COMMAND.search(command)
    if not match:
        return command
    return f"{command}  # code {code_digest(workdir / 'scripts' / f'{match.group(1)}.py', package_root)}"
