"""analysis/ stays pure: no I/O frameworks in its import graph (STYLE.md lesson 1)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

FORBIDDEN = {"duckdb", "locust", "gevent", "torch", "streamlit", "fastapi", "pynvml", "httpx", "store"}
ANALYSIS = Path(__file__).resolve().parents[1] / "analysis"


def _imported_names(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_source_imports_only_allowed_modules():
    files = sorted(ANALYSIS.glob("*.py"))
    assert len(files) >= 7
    for path in files:
        names = _imported_names(ast.parse(path.read_text()))
        tops = {n.split(".")[0] for n in names}
        assert not tops & FORBIDDEN, (path.name, tops & FORBIDDEN)
        servelab = {n for n in names if n.split(".")[0] == "servelab"}
        assert servelab <= {"servelab.config"}, (path.name, servelab)


def test_importing_analysis_loads_no_forbidden_module():
    modules = [f"analysis.{p.stem}" for p in sorted(ANALYSIS.glob("*.py")) if p.stem != "__init__"]
    code = ("import json, sys\n" + "".join(f"import {m}\n" for m in modules)
            + "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(json.loads(out.stdout))
    assert "analysis" in loaded
    assert not loaded & FORBIDDEN, loaded & FORBIDDEN
