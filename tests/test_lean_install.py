"""`pip install .` with no extras: a load-generator-only machine runs `servelab run --target
URL` and `servelab summary` without torch, the web server, Streamlit or NVML installed, finds
the shipped data files, and gets one line naming the extra for what it lacks."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ABSENT = ("torch", "fastapi", "uvicorn", "streamlit", "plotly", "pynvml", "sentence_transformers")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SERVELAB_", "PYTHON", "VIRTUAL_ENV"))}
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture(scope="module")
def lean(tmp_path_factory) -> Path:
    """A fresh venv with `pip install .` (no extras), pinned by constraints.txt; pip's own
    wheel cache and the local indexes make it about a minute."""
    home = tmp_path_factory.mktemp("lean")
    venv.create(home / "venv", with_pip=True)
    py = home / "venv" / "bin" / "python"
    res = subprocess.run([str(py), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                          "-c", str(ROOT / "constraints.txt"), str(ROOT)],
                         capture_output=True, text=True, timeout=900, env=_env(), cwd=home)
    assert res.returncode == 0, res.stderr[-3000:]
    return home


def _lean(home: Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([str(home / "venv" / "bin" / "servelab"), *args], capture_output=True, text=True,
                          timeout=timeout, env=_env(), cwd=home)


def _python(home: Path, code: str) -> str:
    res = subprocess.run([str(home / "venv" / "bin" / "python"), "-c", code], capture_output=True, text=True,
                         timeout=120, env=_env(), cwd=home)
    assert res.returncode == 0, res.stderr
    return res.stdout


@pytest.fixture
def server():
    """A real built-in server, from this (full) environment, on a free port."""
    proc = subprocess.Popen([sys.executable, "-m", "servelab.cli", "serve", "--port", "0", "--model", "tiny"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        deadline, url = time.monotonic() + 120, None
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            if m := re.search(r"(http://127\.0\.0\.1:\d+)", line):
                url = m.group(1)
        assert url, proc.stderr.read() if proc.poll() is not None else "no address printed"
        yield url
    finally:
        proc.terminate()
        proc.wait(30)


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_a_lean_install_runs_against_a_url_and_summarises_without_torch(lean, server):
    absent = json.loads(_python(lean, "import importlib.util, json\n"
                                f"print(json.dumps([m for m in {ABSENT!r} if importlib.util.find_spec(m)]))"))
    assert absent == [], f"installed without an extra asking for them: {absent}"
    version = _lean(lean, "--version")
    assert version.returncode == 0 and version.stdout.startswith("servelab "), version.stderr

    store = str(lean / "s.duckdb")
    res = _lean(lean, "run", "--target", server, "--rate", "4", "--duration", "3", "--max-tokens", "4",
                "--prompt-tokens", "8", "--paraphrase-rate", "0.5", "--store", store, "--json")
    assert res.returncode == 0, res.stderr[-2000:]
    run = json.loads(res.stdout.strip().splitlines()[-1])
    assert run["status"] == "completed" and run["requests"] > 0 and run["errors"] == 0

    again = _lean(lean, "summary", run["run_id"], "--store", store, "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["requests"] == run["requests"]


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_a_lean_install_names_the_missing_extra_in_one_line_and_ships_the_data(lean):
    for args, extra in ((["run", "--target", "builtin", "--duration", "1"], "server"),
                        (["serve", "--port", "0"], "server"),
                        (["dashboard"], "dashboard")):
        res = _lean(lean, *args, "--store", str(lean / "x.duckdb")) if args[0] != "serve" else _lean(lean, *args)
        assert res.returncode == 2, (args, res.stderr)
        assert res.stderr.splitlines() == [f"servelab: error: {'the built-in server' if extra == 'server' else 'the dashboard'}"
                                           f" needs the {extra} extra: pip install 'servelab[{extra}]'"]
    found = json.loads(_python(lean, "import json\nfrom loadtest.paraphrases import DEFAULT_PATH\n"
                                     "from servelab.load_flags import _data_file\n"
                                     "print(json.dumps([str(DEFAULT_PATH), _data_file("
                                     "'data/traces/AzureLLMInferenceTrace_conv.csv')]))"))
    for path in found:
        assert "site-packages" in path and Path(path).is_file(), path
