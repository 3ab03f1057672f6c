"""The guard between servelab and a launched engine: `python -m servelab.engine_guard LOG -- ARGV...`.

Starts ARGV as the leader of a new process group with its output in LOG, prints the
engine's pid, and waits. On SIGTERM (servelab's teardown, or servelab's death through
PR_SET_PDEATHSIG, servelab/procs.py) it sends SIGTERM to the engine's whole group, waits
GRACE_S, then SIGKILLs whatever of the group is left: engines fork workers (vLLM's engine
core), and a signal to the leader alone could leave them running. Exits with the engine's code.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

GRACE_S = 15.0


def _killpg(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print("usage: python -m servelab.engine_guard LOG -- ARGV...", flush=True)
        return 2
    log, cmd = argv[0], argv[2:]
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    signal.signal(signal.SIGINT, lambda *_: stopping.append(True))
    try:
        with open(log, "ab") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
    except OSError as exc:
        print(f"cannot run {cmd[0]}: {exc.strerror or exc}", flush=True)
        return 127
    print(proc.pid, flush=True)
    while proc.poll() is None and not stopping:
        time.sleep(0.1)
    _killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + GRACE_S
    while time.monotonic() < deadline and (proc.poll() is None or _group_alive(proc.pid)):
        time.sleep(0.1)
    _killpg(proc.pid, signal.SIGKILL)  # stragglers of the group, and a leader that ignored SIGTERM
    return proc.wait() if proc.returncode is None else proc.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
