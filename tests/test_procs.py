"""servelab/procs.py: a child started by `spawn` or `spawn_exec` dies with its parent, even
when the parent is killed with SIGKILL (PR_SET_PDEATHSIG, set up in the child before exec)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import gone
from servelab.procs import spawn, stop

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
@pytest.mark.parametrize("how", ["spawn", "spawn_exec"])
def test_children_get_sigterm_when_the_parent_is_killed(how):
    """The parent spawns while other threads of its own run (as the CLI's pump threads do),
    then is killed -9: every child must be gone within a few seconds."""
    script = (
        "import sys, threading, time\n"
        "from servelab.procs import spawn, spawn_exec\n"
        "threading.Thread(target=lambda: [time.sleep(0.001) for _ in iter(int, 1)], daemon=True).start()\n"
        "kids = [spawn(['-c', 'import time; time.sleep(60)']) if sys.argv[1] == 'spawn' else\n"
        "        spawn_exec(['sleep', '60']) for _ in range(3)]\n"
        "print(' '.join(str(k.pid) for k in kids), flush=True)\n"
        "time.sleep(60)\n")
    parent = subprocess.Popen([sys.executable, "-c", script, how], stdout=subprocess.PIPE, text=True, cwd=ROOT,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        kids = [int(p) for p in parent.stdout.readline().split()]
        assert len(kids) == 3
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        assert all(gone(k, 10) for k in kids), "a child outlived its killed parent"
    finally:
        parent.kill()


def test_stop_terminates_then_reaps():
    child = spawn(["-c", "import time; time.sleep(60)"])
    assert stop(child, timeout_s=5) == -signal.SIGTERM
    assert stop(child) == -signal.SIGTERM  # stopping twice is harmless


def test_stop_kills_a_child_that_ignores_sigterm():
    child = spawn(["-c", "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                   "print('ready', flush=True); time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "ready"
    started = time.monotonic()
    assert stop(child, timeout_s=0.5) == -signal.SIGKILL
    assert time.monotonic() - started < 5
