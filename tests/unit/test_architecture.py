"""The package's structure, checked: the folder listing is the pipeline, imports run downward only, and records
are read through their one typed reader.

Each sub-package is a step (or the files, statistics or host layer below the steps); a module may
import modules of its own layer or of layers below, never above, and the import graph has no
circle. Imports sit at the top of their module: the only ones inside functions load heavy
third-party libraries on first use (HEAVY), and the command line defers its own commands through
one table (cli._OnFirstUse). Outside orchestrator/results/reader.py and runreader.py nothing reads a record or
run.json by chained string keys (``r["a"]["b"]``).
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "orchestrator"

# Lowest first. A module may import from its own layer and any layer before it.
LAYERS = [
    {"errors", "schemas", "files"},
    {"stats", "engines"},
    {"host"},
    {"images"},
    {"models"},
    {"matrix"},
    {"plan"},
    {"results"},
    {"execute"},
    {"merge"},
    {"report"},
    {"compare"},
    {"run"},
    {"reproduce"},
    {"cliargs", "cli", "__main__"},
]
# Third-party libraries slow to import, loaded where first used (start-up of `--help`, `validate`, `plan`).
# The one reader of records and of run.json: the only modules that read those documents by string keys.
READERS = {"results/reader.py", "results/recordparts.py", "results/runreader.py"}
HEAVY = {"pandas", "numpy", "plotly", "docker", "requests", "cpuinfo", "psutil", "jsonschema", "jsonschema_rs",
         "referencing", "orjson", "rich", "yaml", "tabulate"}


def modules():
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join(["orchestrator", *parts]), path


def layer_of(module: str) -> int:
    top = module.split(".")[1] if module.count(".") else "__init__"
    for index, names in enumerate(LAYERS):
        if top in names:
            return index
    raise AssertionError(f"{module} is in no layer of tests/unit/test_architecture.py: add its package to LAYERS")


def imports(path: Path):
    """(module imported, line, inside a function?) for every import of an orchestrator module or a library."""
    tree = ast.parse(path.read_text())
    inside = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            inside |= {id(sub) for sub in ast.walk(node) if isinstance(sub, (ast.Import, ast.ImportFrom))}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and not node.level:
            base = node.module or ""
            if base == "orchestrator":
                for alias in node.names:
                    yield f"orchestrator.{alias.name}", node.lineno, id(node) in inside
            else:
                yield base, node.lineno, id(node) in inside
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno, id(node) in inside


def graph():
    known = {name for name, _ in modules()}
    edges = {}
    for name, path in modules():
        targets = set()
        for target, _, _ in imports(path):
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target.startswith("orchestrator.") and target != name:
                targets.add(target)
        edges[name] = targets
    return edges


def test_every_import_runs_downward():
    upward = [f"{name} imports {target}" for name, targets in graph().items() for target in targets
              if layer_of(target) > layer_of(name)]
    assert upward == []


def test_the_import_graph_has_no_circle():
    edges, state, circles = graph(), {}, []

    def visit(node, stack):
        state[node] = "open"
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                circles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    assert circles == []


def test_imports_inside_functions_only_load_heavy_libraries():
    found = [f"{path.relative_to(ROOT.parent)}:{line} imports {target}" for _, path in modules()
             for target, line, inside in imports(path)
             if inside and target.split(".")[0] not in HEAVY]
    assert found == []


def test_no_chained_string_key_reads_outside_the_reader():
    found = []
    for _, path in modules():
        if path.relative_to(ROOT).as_posix() in READERS:
            continue
        source = path.read_text()
        for node in ast.walk(ast.parse(source)):
            if (isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load)
                    and isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str)
                    and isinstance(node.value, ast.Subscript) and isinstance(node.value.slice, ast.Constant)
                    and isinstance(node.value.slice.value, str)):
                found.append(f"{path.relative_to(ROOT.parent)}:{node.lineno}")
    assert found == []


def test_every_package_says_its_role_and_the_glossary_names_every_package():
    glossary = (ROOT / "__init__.py").read_text()
    for folder in sorted(p for p in ROOT.iterdir() if p.is_dir() and (p / "__init__.py").exists()):
        doc = ast.get_docstring(ast.parse((folder / "__init__.py").read_text()))
        assert doc, f"{folder.name}/__init__.py has no docstring saying its role"
        assert f"{folder.name}/" in glossary, f"the package docstring's tree does not list {folder.name}/"
