"""The package's layout: imports that run one way (no cycle), and modules a reader can hold."""

import ast
import pathlib

import fastffn

PACKAGE = pathlib.Path(fastffn.__file__).parent
MOST_LINES = 400


def modules():
    """``{dotted name: path}`` of every module of the package."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports(name, path, known):
    """The package's modules that module ``name`` imports, at its top or inside a function."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
            target = f"{base}.{node.module}" if node.module else base
            for alias in node.names:  # "from . import x" imports module x where there is one
                child = f"{target}.{alias.name}"
                found.add(child if child in known else target)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in known)
    found.discard(name)
    return found


def test_imports_run_one_way():
    """From any module down to the compiled loops, no module is entered twice: the package's
    imports form no cycle (a package's ``__init__`` re-exporting its parts aside)."""
    known = modules()
    graph = {name: imports(name, path, known) for name, path in known.items()}
    for name, path in known.items():
        if path.name == "__init__.py":  # it may import its own children: they import it first
            graph[name] = {m for m in graph[name] if not m.startswith(name + ".")}
    state = {}

    def visit(name, trail):
        if state.get(name) == "done":
            return
        assert state.get(name) != "open", "an import cycle: " + " -> ".join([*trail, name])
        state[name] = "open"
        for child in sorted(graph[name]):
            visit(child, [*trail, name])
        state[name] = "done"

    for name in graph:
        visit(name, [])


def test_no_module_is_over_400_lines():
    long = {
        str(path.relative_to(PACKAGE)): n
        for path in PACKAGE.rglob("*.py")
        if (n := len(path.read_text().splitlines())) > MOST_LINES
    }
    assert not long, long
