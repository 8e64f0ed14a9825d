"""The shape of the code under sidecar/: short functions, one name per concept."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

SIDECAR = Path(__file__).resolve().parent.parent / "sidecar"
LONGEST = 60  # lines, from ``def`` to the function's last line


def _modules() -> list[tuple[str, ast.Module]]:
    return [
        (path.relative_to(SIDECAR).as_posix(), ast.parse(path.read_text(), str(path)))
        for path in sorted(SIDECAR.rglob("*.py"))
    ]


def long_functions(modules: list[tuple[str, ast.Module]], limit: int) -> list[str]:
    found = []
    for name, tree in modules:
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > limit:
                    found.append(f"{name}:{node.lineno} {node.name} ({lines} lines)")
    return found


def classes_defined_twice(modules: list[tuple[str, ast.Module]]) -> dict[str, list[str]]:
    where: dict[str, list[str]] = defaultdict(list)
    for name, tree in modules:
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                where[node.name].append(name)
    return {cls: modules for cls, modules in where.items() if len(modules) > 1}


def test_no_function_in_sidecar_is_over_60_lines() -> None:
    """Every function under sidecar/ fits in 60 lines (split a longer one into named steps)."""
    assert long_functions(_modules(), LONGEST) == []


def test_no_class_name_means_two_things() -> None:
    """No two modules under sidecar/ define a class of the same name (the emulator's payloads
    are not the provider's, an emulated account is not a routing-table account)."""
    assert classes_defined_twice(_modules()) == {}


def test_the_checks_see_what_they_look_for() -> None:
    """The two checks above find a long function and a name defined twice when there is one."""
    body = "\n".join(f"    x{n} = {n}" for n in range(60))
    long_one = ast.parse(f"def f():\n{body}\n\nclass Account: ...\n")
    short_one = ast.parse("def g():\n    return 1\n\nclass Account: ...\n")
    modules = [("a.py", long_one), ("b.py", short_one)]
    assert long_functions(modules, LONGEST) == ["a.py:1 f (61 lines)"]
    assert classes_defined_twice(modules) == {"Account": ["a.py", "b.py"]}
