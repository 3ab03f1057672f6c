"""The package table of docs/architecture.md, enforced: every forbidden edge, and no circles.

The graph is read from the source (every `import`, also those inside functions, which run
sooner or later), so an edge cannot hide behind a late import.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("servelab", "serving", "loadtest", "profilers", "analysis", "store", "dashboard")
GROUND = {"servelab.config", "servelab.errors", "servelab.spoolfile", "servelab.datafiles", "servelab.headers"}  # the ground floor: imports nothing of the project

# Which of the project's layers each package may import (docs/architecture.md, "Package boundaries").
# "ground" is the ground floor; `servelab` (the composition root) may import everything.
MAY_IMPORT = {
    "ground": set(),
    "analysis": {"ground"},
    "store": {"ground"},
    "loadtest": {"ground"},
    "serving": {"ground"},
    "profilers": {"ground"},
    "dashboard": {"ground", "store", "analysis"},
    "servelab": {"ground", "analysis", "store", "loadtest", "serving", "profilers", "dashboard"},
}
# Third-party packages each layer must not import: the frameworks belong to one layer each.
FRAMEWORKS = {"duckdb", "locust", "gevent", "geventhttpclient", "torch", "streamlit", "plotly", "fastapi",
              "starlette", "uvicorn", "pynvml", "sentence_transformers", "prometheus_client"}
MAY_USE = {
    "ground": set(),
    "analysis": set(),
    "store": {"duckdb"},
    "loadtest": {"locust", "gevent", "geventhttpclient"},
    "serving": {"torch", "fastapi", "starlette", "uvicorn", "sentence_transformers", "prometheus_client"},
    "profilers": {"pynvml", "torch", "prometheus_client"},
    "dashboard": {"streamlit", "plotly", "duckdb"},
    "servelab": set(),  # through the packages that own them; never locust/gevent (monkey-patching)
}
# `import locust` patches the whole process with gevent: only the load-generator process's modules.
GEVENT_MODULES = {"loadtest.worker", "loadtest.user", "loadtest.master", "loadtest.client", "loadtest.step",
                  "loadtest.whole", "loadtest.remote"}


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            out[name.removesuffix(".__init__")] = path
    return out


MODULES = _modules()


def _runtime_nodes(tree: ast.AST):
    """Every node, except what sits under `if TYPE_CHECKING:` (read by the type checker only)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def _imports(name: str, path: Path) -> set[str]:
    """Every module name `name` imports (absolute, relative resolved, `from a import b` as a.b too)."""
    out = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in _runtime_nodes(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            out.add(base)
            out |= {f"{base}.{a.name}" for a in node.names}
    return out


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _layer(module: str) -> str:
    return "ground" if module in GROUND else module.split(".")[0]


def test_the_graph_is_read_from_every_package():
    assert {_layer(m) for m in MODULES} == set(MAY_IMPORT)
    assert len(MODULES) > 100


def test_every_project_edge_is_allowed_by_the_package_table():
    bad = []
    for module, names in GRAPH.items():
        for target in names & MODULES.keys():
            if target == "servelab" or _layer(target) == _layer(module):
                continue  # servelab/__init__ holds only the version; edges within a layer are free
            if _layer(target) not in MAY_IMPORT[_layer(module)]:
                bad.append(f"{module} -> {target}")
    assert not bad, bad


def test_the_ground_floor_imports_nothing_of_the_project():
    """Nothing above it: a ground-floor module may use another (config checks headers)."""
    for module in GROUND:
        assert not {n for n in GRAPH[module] if n.split(".")[0] in PACKAGES} - GROUND - {"servelab"}, module


def test_each_framework_stays_in_its_layer():
    bad = []
    for module, names in GRAPH.items():
        used = {n.split(".")[0] for n in names} & FRAMEWORKS
        for framework in used - MAY_USE[_layer(module)]:
            bad.append(f"{module} imports {framework}")
    assert not bad, bad


def test_only_the_load_generator_process_imports_locust_or_gevent():
    users = {m for m, names in GRAPH.items() if {n.split(".")[0] for n in names} & {"locust", "gevent"}}
    assert users <= GEVENT_MODULES, users - GEVENT_MODULES


def test_no_import_circles():
    edges = {m: {t for t in names if t in MODULES and t != m} for m, names in GRAPH.items()}
    cycles = [scc for scc in _strongly_connected(edges) if len(scc) > 1]
    assert not cycles, cycles


def _strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative (the graph has a few hundred nodes)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    for root in edges:
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    scc = []
                    while True:
                        top = stack.pop()
                        on_stack.discard(top)
                        scc.append(top)
                        if top == node:
                            break
                    out.append(scc)
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(edges[child]))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return out


def test_the_circle_finder_finds_a_circle():
    found = _strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}})
    assert sorted(map(sorted, found)) == [["a", "b", "c"], ["d"]]


def test_the_remote_load_generator_loads_only_the_ground_floor_of_the_cli_package():
    code = ("import json, sys\nimport loadtest.master, loadtest.worker\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('servelab', 'serving', 'store', 'analysis', 'torch', 'duckdb', 'fastapi'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert set(json.loads(out.stdout)) <= {"servelab", *GROUND}
