"""The house's import graph, read from the code (issue 31): no import circle anywhere, and no lower floor
importing a higher one.

Every `import` and `from … import` under pipeline/ counts, wherever it stands: at the top of a module, inside a
function (a lazy import still runs, and a circle through it is still a circle — it only waits for the first
call) and inside try/except. `importlib.import_module("pipeline.…")` with a literal name counts too, and so does
an import under `if TYPE_CHECKING:`: it never runs, but a reader still has to know the module it names, so a
type of a higher floor is named by a protocol on the lower one (e.g. pipeline/engines/base.py RuleSetLike).

The floors, lowest first (FLOORS below): the ground floor (platform, formats, registries, and the engines: the
seam and its DuckDB and Spark implementations, which run what a stage hands them and know no stage), then the
stages in their order intake → scoring → ledger → publish → quake, then the top: the portal, the Dagster
wiring and the command line. A module may import its own floor or a lower one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PIPELINE = ROOT / "pipeline"

FLOORS: list[tuple[str, tuple[str, ...]]] = [
    ("ground", ("pipeline", "pipeline.platform", "pipeline.formats", "pipeline.registries", "pipeline.engines")),
    ("intake", ("pipeline.intake",)),
    ("scoring", ("pipeline.scoring",)),
    ("ledger", ("pipeline.ledger",)),
    ("publish", ("pipeline.publish",)),
    ("quake", ("pipeline.quake",)),
    ("top", ("pipeline.portal", "pipeline.wiring", "pipeline.cli")),
]


def modules(root: Path = ROOT) -> dict[str, Path]:
    """Every module of the pipeline package by dotted name (a package by its __init__)."""
    out = {}
    for path in sorted((root / "pipeline").rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def imported_names(tree: ast.AST) -> list[tuple[str, int]]:
    """(dotted name, line) of every import: module level, in functions, in try, under `if TYPE_CHECKING:`.
    `from a.b import c` gives a.b.c (c may be a module or a name in a.b)."""
    found: list[tuple[str, int]] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.Import):
            found.extend((a.name, node.lineno) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.extend((f"{node.module}.{a.name}", node.lineno) for a in node.names)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and getattr(node.func, "attr", getattr(node.func, "id", "")) in ("import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.append((node.args[0].value, node.lineno))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def import_graph(root: Path = ROOT) -> dict[str, dict[str, int]]:
    """module -> {pipeline module it imports: line of the first such import}."""
    mods = modules(root)

    def resolve(name: str) -> str | None:  # the longest module name that is a prefix of the imported name
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, dict[str, int]] = {}
    for name, path in mods.items():
        edges: dict[str, int] = {}
        for imported, line in imported_names(ast.parse(path.read_text(encoding="utf-8"))):
            target = resolve(imported) if imported.split(".")[0] == "pipeline" else None
            if target and target != name and target != "pipeline":
                edges.setdefault(target, line)
        graph[name] = edges
    return graph


def circles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Each strongly connected group of two or more modules (Tarjan), as a cycle through them."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return sorted(groups)


def floor(module: str) -> tuple[int, str]:
    best = (-1, "", "")
    for n, (name, prefixes) in enumerate(FLOORS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > len(best[2]):
                best = (n, name, p)
    assert best[0] >= 0, f"{module} is on no floor: add its package to FLOORS"
    return best[0], best[1]


def upward_imports(graph: dict[str, dict[str, int]]) -> list[str]:
    out = []
    for module, edges in sorted(graph.items()):
        for target, line in sorted(edges.items()):
            (mine, my_name), (theirs, their_name) = floor(module), floor(target)
            if theirs > mine:
                out.append(f"{module} ({my_name}) imports {target} ({their_name}), line {line}")
    return out


def _describe(group: list[str], graph: dict[str, dict[str, int]]) -> str:
    members = set(group)
    return "; ".join(f"{m} -> {t} (line {line})" for m in group for t, line in sorted(graph[m].items()) if t in members)


def test_the_import_graph_has_no_circle():
    graph = import_graph()
    found = circles(graph)
    assert not found, "import circles:\n  " + "\n  ".join(_describe(g, graph) for g in found)


def test_no_floor_imports_a_higher_one():
    problems = upward_imports(import_graph())
    assert not problems, "a lower floor imports a higher one:\n  " + "\n  ".join(problems)


def test_the_spark_engine_is_one_package_and_only_it_imports_pyspark():
    """pyspark (and the Spark engine's own modules) are imported only inside pipeline/engines/spark/ and by the
    seam that chooses it; the stages reach an engine through the seam (pipeline/engines/seam.py), never through
    an implementation. (The file given to spark-submit is an entry point: pipeline/wiring/spark_submit.py.)"""
    mods = modules()
    outside = []
    for name, path in mods.items():
        for imported, line in imported_names(ast.parse(path.read_text(encoding="utf-8"))):
            spark_module = imported.split(".")[0] == "pyspark" or imported.startswith("pipeline.engines.spark")
            inside = name.startswith("pipeline.engines.spark") or name == "pipeline.engines.seam"
            if spark_module and not inside:
                outside.append(f"{name} imports {imported} (line {line})")
            implementation = imported.startswith(("pipeline.engines.duckdb", "pipeline.engines.spark"))
            if implementation and name.split(".")[1] in {"intake", "scoring", "ledger", "publish", "quake"}:
                outside.append(f"{name} (a stage) imports the implementation {imported} (line {line})")
    assert not outside, "\n  ".join(["the Spark engine reached outside its package:", *outside])
    stages = ("intake", "scoring", "ledger", "publish", "quake", "portal")
    assert not [m for m in mods if "spark" in m and m.split(".")[1] in stages]  # no Spark module in a stage


@pytest.mark.parametrize(
    "source, expected",
    [
        ("import pipeline.a\n", {"pipeline.a"}),
        ("def f():\n    from pipeline.b import x\n", {"pipeline.b"}),  # a lazy import counts
        ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pipeline.a import T\n", {"pipeline.a"}),
        ("try:\n    import pipeline.a\nexcept ImportError:\n    pass\n", {"pipeline.a"}),
        ("import importlib\nimportlib.import_module('pipeline.b')\n", {"pipeline.b"}),
    ],
)
def test_the_reader_counts_what_runs(tmp_path, source, expected):
    for name in ("__init__", "a", "b", "c"):
        (tmp_path / "pipeline").mkdir(exist_ok=True)
        (tmp_path / "pipeline" / f"{name}.py").write_text(source if name == "c" else "", encoding="utf-8")
    assert set(import_graph(tmp_path)["pipeline.c"]) == expected


def test_a_circle_is_found_and_named(tmp_path):
    (tmp_path / "pipeline").mkdir()
    files = {"__init__": "", "a": "from pipeline.b import x\n", "b": "def f():\n    from pipeline import a\n"}
    for name, text in files.items():
        (tmp_path / "pipeline" / f"{name}.py").write_text(text, encoding="utf-8")
    assert circles(import_graph(tmp_path)) == [["pipeline.a", "pipeline.b"]]
