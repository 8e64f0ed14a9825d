"""Uses of other packages' private names that ruff's SLF001 does not see.

``python -m tests.private_names [PATH ...]`` (default: ``sidecar tests bench``) prints each
finding as ``path:line: what`` and exits 1 when there is one. It finds:

- ``from X import _name``, ``from X._mod import ...`` and ``import X._mod`` of a package that is
  not ours;
- ``name._attr`` where ``name`` was imported from a package that is not ours (``hashlib._Hash``);
- in a class whose bases include another package's class: ``self._attr`` (or ``cls._attr``,
  ``super()._attr``) and methods or class attributes named ``_attr``, when that base class (or
  one above it) defines ``_attr``: in its class body, its ``__slots__``, or as ``self._attr`` in
  its source.

Dunder names (``__init__``) are public. Our packages are ``sidecar``, ``tests`` and ``bench``.
"""

from __future__ import annotations

import ast
import functools
import importlib
import inspect
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

OURS = frozenset({"sidecar", "tests", "bench"})
DEFAULT_PATHS = ("sidecar", "tests", "bench")


@dataclass(frozen=True, order=True)
class Finding:
    path: str
    line: int
    what: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.what}"


def private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def foreign(module: str) -> bool:
    """A module of another package (the standard library included)."""
    top = module.split(".", 1)[0]
    return top not in OURS and top != "__future__"


@dataclass(frozen=True)
class Binding:
    """What a name in the checked module was imported as: ``module`` and the ``attr`` in it
    (``None``: the module itself)."""

    module: str
    attr: str | None

    def resolve(self) -> object | None:
        try:
            found: object = importlib.import_module(self.module)
        except ImportError:
            return None
        if self.attr is None:
            return found
        if hasattr(found, self.attr):
            attr: object = getattr(found, self.attr)
            return attr
        try:  # a submodule not imported by its package (``from aiohttp import web``)
            return importlib.import_module(f"{self.module}.{self.attr}")
        except ImportError:
            return None

    @property
    def foreign(self) -> bool:
        return foreign(self.module)


def check_source(source: str, path: str = "<snippet>") -> list[Finding]:
    tree = ast.parse(source, path)
    checker = _Checker(path)
    checker.visit(tree)
    return sorted(checker.findings)


def check_paths(paths: list[Path]) -> list[Finding]:
    findings: list[Finding] = []
    for root in paths:
        files = sorted(root.rglob("*.py")) if root.is_dir() else [root]
        for file in files:
            findings += check_source(file.read_text(encoding="utf-8"), str(file))
    return findings


class _Checker(ast.NodeVisitor):
    def __init__(self, path: str) -> None:
        self.path = path
        self.findings: list[Finding] = []
        self.bindings: dict[str, Binding] = {}
        self.classes: dict[str, list[type]] = {}  # classes defined here: their foreign bases

    def report(self, node: ast.AST, what: str) -> None:
        self.findings.append(Finding(self.path, getattr(node, "lineno", 0), what))

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if foreign(alias.name) and any(private(part) for part in alias.name.split(".")):
                self.report(node, f"imports the private module {alias.name}")
            if alias.asname:
                self.bindings[alias.asname] = Binding(alias.name, None)
            else:
                top = alias.name.split(".", 1)[0]
                self.bindings[top] = Binding(top, None)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        if node.level or not foreign(module):
            for alias in node.names:  # ours: bound, for the bases of classes defined here
                self.bindings[alias.asname or alias.name] = Binding(
                    _absolute(module, node.level, self.path), alias.name
                )
            return
        if any(private(part) for part in module.split(".")):
            self.report(node, f"imports from the private module {module}")
        for alias in node.names:
            if private(alias.name):
                self.report(node, f"imports the private name {alias.name} from {module}")
            self.bindings[alias.asname or alias.name] = Binding(module, alias.name)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        root, chain = _chain(node)
        if root is not None and (binding := self.bindings.get(root)) and binding.foreign:
            for attr in chain:
                if private(attr):
                    dotted = ".".join([root, *chain])
                    self.report(node, f"reaches the private name {attr} ({dotted})")
                    break
            return  # the rest of the chain is checked here, not again
        self.generic_visit(node)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        bases = [base for expr in node.bases for base in self.foreign_bases(expr)]
        self.classes[node.name] = bases
        defined = {name: owner for base in bases for name, owner in defined_by(base).items()}
        if defined:
            for finding in _touches(node, defined):
                self.report(*finding)
        self.generic_visit(node)

    def foreign_bases(self, expr: ast.expr) -> list[type]:
        """The classes of other packages among ``expr``'s (and its ancestors')."""
        if isinstance(expr, ast.Name) and expr.id in self.classes:
            return self.classes[expr.id]
        root, chain = _chain(expr) if isinstance(expr, ast.Attribute) else (None, [])
        if isinstance(expr, ast.Name):
            root = expr.id
        binding = self.bindings.get(root) if root is not None else None
        if binding is None:
            return []
        found = binding.resolve()
        for attr in chain:
            found = getattr(found, attr, None)
        if not isinstance(found, type):
            return []
        return [cls for cls in found.__mro__ if cls is not object and foreign(cls.__module__)]


def _absolute(module: str, level: int, path: str) -> str:
    if not level:
        return module
    package = Path(path).with_suffix("").parts[: -level or None]
    return ".".join([*package, module] if module else package)


def _chain(node: ast.expr) -> tuple[str | None, list[str]]:
    """``a.b.c`` as ``("a", ["b", "c"])``; the root is ``None`` when it is not a name."""
    attrs: list[str] = []
    while isinstance(node, ast.Attribute):
        attrs.append(node.attr)
        node = node.value
    return (node.id if isinstance(node, ast.Name) else None), attrs[::-1]


@functools.cache
def defined_by(cls: type) -> dict[str, str]:
    """The private names class ``cls`` defines (class body, ``__slots__``, ``self._x`` in its
    source), each with the class that defines it."""
    names: set[str] = set(vars(cls))
    slots = vars(cls).get("__slots__", ())
    names.update([slots] if isinstance(slots, str) else slots)
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):  # a class written in C, or no source shipped
        source = ""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and _chain(node) == ("self", [node.attr]):
            names.add(node.attr)
    return {name: f"{cls.__module__}.{cls.__qualname__}" for name in names if private(name)}


def _touches(node: ast.ClassDef, defined: dict[str, str]) -> Iterator[tuple[ast.AST, str]]:
    for item in node.body:
        own = []
        if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
            own = [item.name]
        elif isinstance(item, (ast.Assign, ast.AnnAssign)):
            targets = item.targets if isinstance(item, ast.Assign) else [item.target]
            own = [t.id for t in targets if isinstance(t, ast.Name)]
        for name in own:
            if name in defined:
                yield item, f"overrides {defined[name]}'s private {name}"
    for sub in ast.walk(node):
        if not isinstance(sub, ast.Attribute) or sub.attr not in defined:
            continue
        value = sub.value
        on_self = isinstance(value, ast.Name) and value.id in {"self", "cls"}
        on_super = (
            isinstance(value, ast.Call)
            and isinstance(value.func, ast.Name)
            and value.func.id == "super"
        )
        if on_self or on_super:
            yield sub, f"touches {defined[sub.attr]}'s private {sub.attr}"


def main(argv: list[str]) -> int:
    findings = check_paths([Path(arg) for arg in argv or DEFAULT_PATHS])
    for finding in findings:
        print(finding)  # noqa: T201 - the report
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
