"""The package's shape, checked from its source with ``ast`` (nothing is imported):

- no import cycle between the modules of ``crossmargin``, counting every import: top level,
  ``if TYPE_CHECKING:`` blocks and imports inside functions;
- the pure-Python oracle ``crossmargin.reference`` is imported by no module outside it (the
  lazy ``crossmargin.__getattr__`` loads it with importlib on purpose, and is the only module
  allowed to call ``importlib.import_module``);
- no module reads or writes a private attribute (``x._name``) that another module defines,
  nor imports another module's private name: a feature gets what it needs through public
  methods and arguments (the engine hands the compiled engine, the universe, the bound book
  and the prices to the feature functions);
- tests, benches and examples do not reach into the engine's, universe's or book's compiled
  state either (``_native``, ``_pool``, ``_compiled``, ``_compiled_portfolio``, ``_grouped``).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "python" / "crossmargin"
# The compiled state of Engine, Universe and Book: never read from outside their modules.
COMPILED_STATE = ("_native", "_pool", "_compiled", "_compiled_portfolio", "_grouped")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, tuple[Path, ast.Module]]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        out[_module_name(path)] = (path, ast.parse(path.read_text(encoding="utf-8"), str(path)))
    return out


MODULES = _modules()
# Compiled modules have no Python source and import nothing of the package.
COMPILED = {"crossmargin._core"}


def _is_package(name: str) -> bool:
    return MODULES[name][0].name == "__init__.py"


def _resolve(module: str, node: ast.ImportFrom) -> str:
    """The absolute module an ``from ... import`` names (relative imports resolved)."""
    if not node.level:
        return node.module or ""
    base = module.split(".")
    if not _is_package(module):
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def _imports(module: str, tree: ast.Module) -> Iterator[tuple[str, int, str | None]]:
    """(imported module, line, name imported from it or None) for every import in the
    module, wherever it stands."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno, None
        elif isinstance(node, ast.ImportFrom):
            source = _resolve(module, node)
            for alias in node.names:
                sub = f"{source}.{alias.name}"
                if sub in MODULES or sub in COMPILED:
                    yield sub, node.lineno, None  # a submodule
                else:
                    yield source, node.lineno, alias.name


def _graph() -> dict[str, dict[str, int]]:
    """module → {imported package module: first line}; parent packages that Python imports
    on the way are not edges (a package's ``__init__`` re-exporting its parts is not a
    cycle)."""
    graph: dict[str, dict[str, int]] = {m: {} for m in MODULES}
    for module, (_, tree) in MODULES.items():
        for target, line, _name in _imports(module, tree):
            if target in MODULES:
                graph[module].setdefault(target, line)
    return graph


def _cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Strongly connected components with more than one module, or a module importing
    itself (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            scc = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                scc.append(w)
                if w == v:
                    break
            if len(scc) > 1 or v in graph[v]:
                found.append(sorted(scc))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _where(module: str, line: int) -> str:
    return f"{MODULES[module][0].relative_to(ROOT)}:{line}"


def test_the_module_graph_has_no_cycle() -> None:
    graph = _graph()
    cycles = _cycles(graph)
    report = []
    for scc in cycles:
        members = set(scc)
        edges = [
            f"  {a} → {b} ({_where(a, line)})"
            for a in scc
            for b, line in sorted(graph[a].items())
            if b in members
        ]
        report.append(" ↔ ".join(scc) + "\n" + "\n".join(edges))
    what = "import cycles (every import counts, TYPE_CHECKING and in-function too)"
    assert not cycles, what + ":\n" + "\n".join(report)


def test_the_graph_sees_every_kind_of_import() -> None:
    """The checker itself: imports under TYPE_CHECKING and inside functions are edges."""
    tree = ast.parse(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from crossmargin.engine import Engine\n"
        "def f():\n    from crossmargin import book\n    import crossmargin.universe\n"
        "from crossmargin.cascade import CascadeConfig\n"
    )
    got = {t for t, _, _ in _imports("crossmargin.x", tree)}
    assert {"crossmargin.engine", "crossmargin.book", "crossmargin.universe"} <= got
    assert "crossmargin.cascade" in got
    assert _cycles({"a": {"b": 1}, "b": {"a": 1}, "c": {"c": 1}}) == [["a", "b"], ["c"]]


def _in_reference(module: str) -> bool:
    return module == "crossmargin.reference" or module.startswith("crossmargin.reference.")


# Test tooling, not the engine: crossmargin.testing compares results against the oracle.
ORACLE_USERS = ("crossmargin.testing",)


def test_only_the_reference_imports_the_reference() -> None:
    bad = [
        f"{_where(m, line)}: {m} imports {t}"
        for m, (_, tree) in MODULES.items()
        if not _in_reference(m) and m not in ORACLE_USERS
        for t, line, _ in _imports(m, tree)
        if _in_reference(t)
    ]
    assert not bad, "the oracle is imported by the package:\n" + "\n".join(bad)


def test_only_the_package_root_imports_modules_by_name() -> None:
    """importlib / __import__ would hide an import from the graph: only the lazy
    ``crossmargin.__getattr__`` uses it."""
    bad = []
    for m, (_, tree) in MODULES.items():
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
            # crossmargin._optional loads third-party packages only (pandas, typer, ...)
            if name in ("import_module", "__import__") and m not in (
                "crossmargin",
                "crossmargin._optional",
            ):
                bad.append(f"{_where(m, node.lineno)}: {m} calls {name}")
    assert not bad, "\n".join(bad)


# ---- private attributes ---------------------------------------------------------------
def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _defined_private_attributes(tree: ast.Module) -> set[str]:
    """Private attribute names a module gives its objects: ``self._x = ...``,
    ``object.__setattr__(self, "_x", ...)``, class-level ``_x`` (fields, methods, class
    attributes) and ``__slots__`` entries."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                    names.add(item.name)
                elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    names.add(item.target.id)
                elif isinstance(item, ast.Assign):
                    for t in item.targets:
                        if isinstance(t, ast.Name):
                            names.add(t.id)
                            if t.id == "__slots__" and isinstance(item.value, ast.Tuple | ast.List):
                                names |= {
                                    e.value
                                    for e in item.value.elts
                                    if isinstance(e, ast.Constant) and isinstance(e.value, str)
                                }
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "__setattr__"
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
        ):
            names.add(node.args[1].value)
    return {n for n in names if _private(n)}


def _module_level_private_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return {n for n in names if _private(n)}


def _module_aliases(module: str, tree: ast.Module) -> dict[str, str]:
    """Local names bound to modules of the package (``import crossmargin.x as y``, ``from
    crossmargin.x import y``, ``import crossmargin``)."""
    out: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "crossmargin":
                    out[alias.asname or alias.name.split(".")[0]] = (
                        alias.name if alias.asname else "crossmargin"
                    )
        elif isinstance(node, ast.ImportFrom):
            source = _resolve(module, node)
            for alias in node.names:
                if f"{source}.{alias.name}" in MODULES:
                    out[alias.asname or alias.name] = f"{source}.{alias.name}"
    return out


def _module_of(expr: ast.expr, aliases: dict[str, str]) -> str | None:
    """The package module an expression names (``ref``, ``crossmargin.reference.margin``)."""
    if isinstance(expr, ast.Name):
        return aliases.get(expr.id)
    if isinstance(expr, ast.Attribute):
        base = _module_of(expr.value, aliases)
        if base is not None and f"{base}.{expr.attr}" in MODULES:
            return f"{base}.{expr.attr}"
    return None


def test_no_module_touches_another_modules_private_attributes() -> None:
    defined = {m: _defined_private_attributes(tree) for m, (_, tree) in MODULES.items()}
    owners: dict[str, set[str]] = defaultdict(set)
    for m, names in defined.items():
        for n in names:
            owners[n].add(m)
    module_private = {m: _module_level_private_names(tree) for m, (_, tree) in MODULES.items()}
    for m, names in module_private.items():
        for n in names:
            owners[n].add(m)
    bad = []
    for m, (_, tree) in MODULES.items():
        aliases = _module_aliases(m, tree)
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Attribute) and _private(node.attr)):
                continue
            # A private name read through another module: `ref._accounts`.
            owner = _module_of(node.value, aliases)
            if owner is not None and owner != m:
                sub = f"{owner}.{node.attr}"
                if sub not in MODULES and sub not in COMPILED:
                    bad.append(f"{_where(m, node.lineno)}: {owner}.{node.attr}")
                continue
            others = owners.get(node.attr, set()) - {m}
            if others and node.attr not in defined[m] | module_private[m]:
                bad.append(
                    f"{_where(m, node.lineno)}: .{node.attr} (defined in "
                    f"{', '.join(sorted(others))})"
                )
        for target, line, name in _imports(m, tree):
            if name is not None and target in MODULES and target != m:
                if name in module_private[target]:
                    bad.append(f"{_where(m, line)}: imports {target}.{name}")
    assert not bad, "private state used across modules:\n" + "\n".join(bad)


def test_the_compiled_state_stays_with_its_owner() -> None:
    """Engine._native, Universe._compiled / _compiled_portfolio, Book._grouped (and the old
    _pool) are read only in engine.py, universe.py and book.py; not by tests, benches or
    examples either."""
    owners = {
        "_native": "crossmargin.engine",
        "_pool": None,
        "_compiled": "crossmargin.universe",
        "_compiled_portfolio": "crossmargin.universe",
        "_grouped": "crossmargin.book",
    }
    assert set(owners) == set(COMPILED_STATE)
    files = [
        *((m, p) for m, (p, _) in MODULES.items()),
        *(
            (None, p)
            for folder in ("tests", "benches", "examples")
            for p in sorted((ROOT / folder).rglob("*.py"))
        ),
    ]
    bad = []
    for module, path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in owners:
                if module is None or owners[node.attr] != module:
                    bad.append(f"{path.relative_to(ROOT)}:{node.lineno}: .{node.attr}")
    assert not bad, "compiled state read outside its module:\n" + "\n".join(bad)
