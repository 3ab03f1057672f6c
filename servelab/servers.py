"""Built-in server processes: start `python -m serving` N times, wait until each is ready,
stop them all after; and `Target`, what a run's target is (URL, pids).

Below `servelab/targets.py` (the target of a run) and `servelab/replicas.py` (N servers
behind HAProxy), which both start servers through `server_processes`.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

from servelab.config import ServerConfig
from servelab.errors import UserError
from servelab.procs import spawn, stop_all

READY = re.compile(r"listening on (http://\S+)")


@dataclass(frozen=True)
class Target:
    """A run's target: its base URL, and the processes servelab launched for it.

    `pid` is the server (with replicas: replica 0, the one the GPU sampler attributes
    memory to); `pids` every replica's, in order, `backends` their own URLs; `lb_pid` the
    load balancer's."""

    url: str
    pid: int | None = None
    pids: tuple[int, ...] = ()
    lb_pid: int | None = None
    backends: tuple[str, ...] = ()

    def roles(self) -> dict[str, int]:
        """The processes by sampler role: server (replica 0), server1, ..., lb."""
        out = {("server" if i == 0 else f"server{i}"): pid for i, pid in enumerate(self.pids or (self.pid,)) if pid}
        if self.lb_pid:
            out["lb"] = self.lb_pid
        return out


def drain(stream, sink: deque) -> None:
    for line in stream:
        sink.append(line.rstrip("\n"))


@contextlib.contextmanager
def server_processes(cfg: ServerConfig, n: int, start_timeout_s: float = 120.0) -> Iterator[list[Target]]:
    """`n` server processes with `cfg`, started together (they build their models side by
    side); yields their Targets once every one is ready, stops them all after the block."""
    started: list[tuple[subprocess.Popen, deque]] = []
    try:
        for _ in range(n):
            proc = spawn(["-m", "serving", "--config-json", cfg.model_dump_json()],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=cfg.child_env(os.environ))  # api_keys travel here, never in argv
            err_tail: deque[str] = deque(maxlen=20)
            threading.Thread(target=drain, args=(proc.stderr, err_tail), daemon=True).start()
            started.append((proc, err_tail))
        targets = []
        for proc, err_tail in started:
            url = _wait_ready(proc, err_tail, start_timeout_s)
            threading.Thread(target=drain, args=(proc.stdout, deque(maxlen=1)), daemon=True).start()
            targets.append(Target(url, proc.pid, (proc.pid,)))
        yield targets
    finally:
        stop_all([proc for proc, _ in started])


def _wait_ready(proc: subprocess.Popen, err_tail: deque, timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    assert proc.stdout is not None, "started with stdout=PIPE"
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            proc.wait(5)
            detail = err_tail[-1] if err_tail else f"exit code {proc.returncode}"
            raise UserError(f"the built-in server did not start: {detail}")
        if m := READY.search(line):
            return m.group(1)
    raise UserError(f"the built-in server did not start within {timeout_s:.0f} s")
