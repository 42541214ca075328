"""
Structural rules of the code base, checked from its source.
"""

from __future__ import annotations

import ast
from pathlib import Path

from twisted.trial import unittest

import timecoin

PACKAGE = Path(timecoin.__file__).parent


def module_names(root: Path) -> dict[str, Path]:
    """
    Every module of the package at C{root}, by dotted name (a package by
    its own name, not C{.__init__}).
    """
    modules = {}
    for path in root.rglob("*.py"):
        parts = path.relative_to(root.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """
    The modules of C{modules} that module C{name} imports anywhere:
    at module level, inside functions, under C{TYPE_CHECKING}.
    """
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] \
                    if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {m for m in found if m in modules and m != name}


def import_cycles(modules: dict[str, Path]) -> list[list[str]]:
    """
    The import cycles among C{modules}: each strongly connected component
    of more than one module (Tarjan), sorted.
    """
    graph = {name: imports_of(name, path, modules)
             for name, path in modules.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for name in sorted(graph):
        if name not in index:
            visit(name)
    return sorted(cycles)


class ImportGraphTests(unittest.TestCase):
    """
    The modules of C{timecoin} import each other without a loop.
    """

    def test_no_cycle(self) -> None:
        """
        No group of C{timecoin} modules imports each other in a loop,
        counting every import (module level, in functions, under
        C{TYPE_CHECKING}); a failure names the modules of each loop.
        """
        cycles = import_cycles(module_names(PACKAGE))
        self.assertEqual(cycles, [], "import cycles: " + "; ".join(
            " <-> ".join(cycle) for cycle in cycles))

    def test_finds_a_cycle(self) -> None:
        """
        The check sees a loop made of a function-level import and one
        under C{TYPE_CHECKING}.
        """
        root = Path(self.mktemp()) / "pkg"
        root.mkdir(parents=True)
        (root / "__init__.py").write_text("")
        (root / "a.py").write_text("def f():\n    from pkg import b\n")
        (root / "b.py").write_text(
            "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n    from .a import f\n")
        (root / "c.py").write_text("import pkg.a\n")
        self.assertEqual(import_cycles(module_names(root)),
                         [["pkg.a", "pkg.b"]])


ROOT = PACKAGE.parent
BUILT_ONLY_BY_WIRING = ("Node", "P2PService")
"""Classes only L{timecoin.wiring} constructs: every node in the node's
code, its tests, benchmarks and simulator is put together one way."""


def wiring_bypasses(paths: list[Path]) -> list[str]:
    """
    Where C{paths} construct a class of L{BUILT_ONLY_BY_WIRING} or set a
    node's C{p2p} themselves, as C{path:line: what}.
    """
    found = []
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call):
                func = node.func
                name = func.id if isinstance(func, ast.Name) else \
                    func.attr if isinstance(func, ast.Attribute) else None
                if name in BUILT_ONLY_BY_WIRING:
                    found.append(f"{path}:{node.lineno}: {name}(...)")
            elif isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Attribute) and \
                            target.attr == "p2p" and \
                            isinstance(target.value, (ast.Attribute,
                                                      ast.Name)) and \
                            ast.unparse(target.value).endswith("node"):
                        found.append(f"{path}:{node.lineno}: "
                                     f"{ast.unparse(target)} = ...")
    return found


class WiringTests(unittest.TestCase):
    """
    One way to build a node.
    """

    def test_nodes_built_by_wiring_only(self) -> None:
        """
        No module of the node, test, benchmark or simulator constructs a
        C{Node} or a C{P2PService}, or sets C{node.p2p}, but
        C{timecoin/wiring.py} (test clusters once wired nodes without
        P2P's admission queue that production nodes have).
        """
        paths = [p for d in ("timecoin", "tests", "benchmarks")
                 for p in sorted((ROOT / d).rglob("*.py"))
                 if p != PACKAGE / "wiring.py"]
        self.assertGreater(len(paths), 100)
        self.assertEqual(wiring_bypasses(paths), [])

    def test_finds_a_bypass(self) -> None:
        """
        The check sees a direct construction and a hand-set C{p2p}.
        """
        path = Path(self.mktemp())
        path.write_text("n = Node(config, clock)\n"
                        "n.node.p2p = P2PService(n, reactor)\n"
                        "node.p2p = None\n")
        self.assertEqual(len(wiring_bypasses([path])), 4)


TESTS = ROOT / "tests"


def cross_test_imports(paths: list[Path]) -> list[str]:
    """
    Where a C{tests/test_*.py} of C{paths} imports another C{test_*}
    module (or a name from one), anywhere in it, as
    C{path:line: module}; shared fixtures belong in C{tests/helpers/}.
    """
    found = []
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                modules = [node.module or ""]
                modules += [f"{node.module}.{alias.name}"
                            for alias in node.names]
            else:
                continue
            for module in modules:
                parts = module.split(".")
                if len(parts) >= 2 and parts[0] == "tests" and \
                        parts[1].startswith("test_"):
                    found.append(f"{path}:{node.lineno}: {module}")
                    break
    return found


class TestModuleTests(unittest.TestCase):
    """
    Test modules share fixtures through C{tests/helpers/}, never through
    each other.
    """

    def test_no_test_module_imports_another(self) -> None:
        """
        No C{tests/test_*.py} imports a C{test_*} module (at module level
        or in a function): the fixtures several of them use live in
        C{tests/helpers/}, so a test module can change without breaking
        another.
        """
        paths = sorted(TESTS.glob("test_*.py"))
        self.assertGreater(len(paths), 50)
        self.assertEqual(cross_test_imports(paths), [])

    def test_finds_a_test_module_import(self) -> None:
        """
        The check sees a module-level and a function-level import of a
        test module, and not an import of a helper.
        """
        path = Path(self.mktemp())
        path.write_text("from tests.test_rpc import RPCTestBase\n"
                        "from tests.helpers.rpc import URL\n"
                        "def f():\n    import tests.test_sync\n"
                        "from tests import test_chain\n")
        self.assertEqual(len(cross_test_imports([path])), 3)


MAX_CLASS_LINES = 400
"""The most lines a class of C{timecoin} may span (issue 17: a class
longer than this does more than one job)."""


def long_classes(root: Path, limit: int) -> list[str]:
    """
    The classes of the modules under C{root} longer than C{limit} lines
    (from the C{class} line to the last line of its body), as
    C{path:line: name (N lines)}.
    """
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ClassDef):
                assert node.end_lineno is not None
                size = node.end_lineno - node.lineno + 1
                if size > limit:
                    found.append(f"{path}:{node.lineno}: {node.name} "
                                 f"({size} lines)")
    return found


class ClassSizeTests(unittest.TestCase):
    """
    No class of C{timecoin} grows past L{MAX_CLASS_LINES}.
    """

    def test_no_long_class(self) -> None:
        """
        Every class in C{timecoin/} spans at most L{MAX_CLASS_LINES}
        lines; a failure names each longer one with its size.
        """
        long = long_classes(PACKAGE, MAX_CLASS_LINES)
        self.assertEqual(long, [], "classes over "
                         f"{MAX_CLASS_LINES} lines: " + "; ".join(long))

    def test_finds_a_long_class(self) -> None:
        """
        The check counts a class from its C{class} line to its last line
        and names the ones over the limit only.
        """
        root = Path(self.mktemp())
        root.mkdir()
        (root / "m.py").write_text(
            "class Short:\n    x = 1\n\n\n"
            "class Long:\n" + "    y = 1\n" * 4)
        self.assertEqual(long_classes(root, 5), [])
        self.assertEqual(long_classes(root, 4),
                         [f"{root / 'm.py'}:5: Long (5 lines)"])
