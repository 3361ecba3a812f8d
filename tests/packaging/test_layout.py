"""The package's shape stays what DESIGN.md promises: no import cycles, a light `import hybridnb`,
and every subpackage says what it owns."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PKG = Path(__file__).resolve().parents[2] / "hybridnb"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Modules of hybridnb that ``path`` imports, at module level or inside functions."""
    mod = module_name(path)
    is_pkg = path.name == "__init__.py"
    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("hybridnb")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                target = ".".join(base[: len(base) - node.level + 1] + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("hybridnb"):
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if _exists(sub) else target)
    return found


def _exists(mod: str) -> bool:
    p = PKG.parent / Path(*mod.split("."))
    return p.with_suffix(".py").exists() or (p / "__init__.py").exists()


def graph() -> dict[str, set[str]]:
    g = {module_name(p): imports_of(p) for p in PKG.rglob("*.py")}
    # importing a.b.c runs a/__init__ and a/b/__init__ first
    for deps in g.values():
        for d in list(deps):
            parts = d.split(".")
            deps |= {".".join(parts[:i]) for i in range(2, len(parts))}
    return g


def find_cycle(g: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(g.get(n, ())):
            if m == n or (n.startswith(m + ".") and m in g and module_name_is_pkg(m)):
                continue  # a module importing its own package's __init__ is the normal parent relation
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m in g and state.get(m) is None:
                cyc = visit(m)
                if cyc:
                    return cyc
        stack.pop()
        state[n] = 2
        return None

    for node in sorted(g):
        if state.get(node) is None:
            cyc = visit(node)
            if cyc:
                return cyc
    return None


def module_name_is_pkg(mod: str) -> bool:
    return (PKG.parent / Path(*mod.split(".")) / "__init__.py").exists()


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycles_inside_hybridnb():
    cycle = find_cycle(graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_import_hybridnb_stays_light():
    code = ("import sys, hybridnb; heavy = ('torch', 'transformers', 'bertopic', 'sklearn', 'model2vec', "
            "'altair', 'numpy', 'openai', 'duckdb'); print([m for m in heavy if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_every_subpackage_says_what_it_owns():
    for init in PKG.rglob("__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc and len(doc.split()) >= 5, f"{init.relative_to(PKG.parent)} has no docstring saying what it owns"


def test_modules_and_functions_stay_small():
    """DESIGN.md: a module over 400 lines or a function over 60 is asking to be split."""
    too_big = []
    for path in PKG.rglob("*.py"):
        text = path.read_text()
        name = path.relative_to(PKG.parent)
        if text.count("\n") > 400:
            too_big.append(f"{name}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 60:
                too_big.append(f"{name}:{node.lineno} {node.name}() {node.end_lineno - node.lineno + 1} lines")
    assert not too_big, "split by responsibility: " + "; ".join(too_big)
