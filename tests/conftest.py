"""Shared by the CLI tests: run `python -m servelab.cli` in its own session, reap it after.

Every CLI process is started with start_new_session=True, so it and everything it spawns
(the built-in server, the load generator) share a session id; the `cli` fixture's
finalizer kills whatever is left in those sessions, even if a test failed half-way.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

CLI = [sys.executable, "-m", "servelab.cli"]


def session_procs(sid: int) -> list[psutil.Process]:
    """Live (non-zombie) processes of session `sid`."""
    found = []
    for p in psutil.process_iter(["status"]):
        try:
            if os.getsid(p.pid) == sid and p.info["status"] != psutil.STATUS_ZOMBIE:
                found.append(p)
        except (OSError, psutil.Error):  # gone meanwhile
            pass
    return found


def gone(pid: int, timeout_s: float) -> bool:
    """True once `pid` has exited (or is a zombie: its orphans' reaper may never reap it)
    within `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


def describe(p: psutil.Process) -> str:
    try:
        return f"{p.pid} {' '.join(p.cmdline()[:4])}"
    except psutil.Error:
        return str(p.pid)


class Cli:
    """Starts CLI processes in new sessions (cwd = the test's tmp dir) and reaps them."""

    def __init__(self, cwd, env: dict[str, str]):
        self.cwd, self.env = cwd, env
        self.procs: list[subprocess.Popen] = []

    def popen(self, args: list[str], env: dict[str, str] | None = None, **kw) -> subprocess.Popen:
        proc = subprocess.Popen([*CLI, *args], cwd=self.cwd, env={**self.env, **(env or {})},
                                start_new_session=True, **kw)
        self.procs.append(proc)
        return proc

    def popen_module(self, args: list[str], **kw) -> subprocess.Popen:
        """`python -m ARGS...` in a new session (e.g. a load-generator worker started by hand)."""
        proc = subprocess.Popen([sys.executable, "-m", *args], cwd=self.cwd, env=self.env,
                                start_new_session=True, **kw)
        self.procs.append(proc)
        return proc

    def __call__(self, *args: str, env: dict[str, str] | None = None,
                 timeout: float = 120) -> subprocess.CompletedProcess:
        """Run `servelab ARGS...` to the end; returns it with text stdout/stderr."""
        proc = self.popen(list(args), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.reap()
            out, err = proc.communicate()
            pytest.fail(f"servelab {' '.join(args)} did not finish in {timeout} s:\n{err[-2000:]}")
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)

    def session(self, proc: subprocess.Popen) -> list[psutil.Process]:
        """What is still alive of `proc`'s session (proc itself and all it started)."""
        return session_procs(proc.pid)

    def leftovers(self) -> list[psutil.Process]:
        return [p for proc in self.procs for p in session_procs(proc.pid)]

    def reap(self) -> None:
        for p in self.leftovers():
            try:
                p.kill()
            except psutil.Error:
                pass
        deadline = time.monotonic() + 10
        while self.leftovers() and time.monotonic() < deadline:
            time.sleep(0.05)
        for proc in self.procs:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                pass


@pytest.fixture
def cli(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SERVELAB_")}
    env.update(PYTHONUNBUFFERED="1", COLUMNS="120")
    c = Cli(tmp_path, env)
    yield c
    left = [describe(p) for p in c.leftovers()]
    c.reap()
    assert not left, f"processes left behind: {left}"


ROOT = Path(__file__).resolve().parents[1]


def pytest_collection_modifyitems(items):
    """The real-engine tests run last: CI (.ci/run) builds their environment in the background
    meanwhile, and `engine_env` waits for that build (a stable sort keeps every other order)."""
    items.sort(key=lambda item: item.get_closest_marker("engines") is not None)


@pytest.fixture(scope="session")
def engine_env() -> dict[str, str]:
    """The real engines' own environment and the tiny model (`make engines`): {python, model}.
    Built here when missing; a build already running (CI's, in the background) is waited for
    (the Makefile's flock), then found up to date."""
    r = subprocess.run(["make", "--no-print-directory", "engines"], cwd=ROOT, capture_output=True, text=True)
    if r.returncode:
        pytest.fail(f"make engines failed:\n{(r.stdout + r.stderr)[-3000:]}")
    return {"python": str(ROOT / ".engines/vllm/bin/python"), "model": str(ROOT / ".engines/tiny-llama")}
