"""Start the reference server as a child process and learn its address.

Used by the tests, and usable by anything that needs a real server: runs
`python -m serving --config-json ...`, waits for the ready line, and stops it with SIGTERM
(SIGKILL after a grace period).
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time

from servelab.config import ServerConfig
from serving.server import READY_PREFIX


class ServerProcess:
    """A running server child; `url` is its base URL, e.g. http://127.0.0.1:40123."""

    def __init__(self, proc: subprocess.Popen, url: str, stderr_file):
        self.proc = proc
        self.url = url
        self._stderr = stderr_file

    def stderr_text(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode("utf-8", errors="replace")

    def stop(self, grace_s: float = 10.0) -> int:
        """SIGTERM, wait up to `grace_s`, then SIGKILL; returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(grace_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return self.proc.returncode

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
        self._stderr.close()


def launch(cfg: ServerConfig, timeout_s: float = 60.0, env: dict | None = None) -> ServerProcess:
    """Start a server for `cfg` and return once it accepts connections."""
    stderr_file = tempfile.TemporaryFile()
    argv = [sys.executable, "-m", "serving", "--config-json", cfg.model_dump_json()]
    env = cfg.child_env(os.environ if env is None else env)  # api_keys travel here, never in argv
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=stderr_file, env=env)
    line = _read_line(proc, timeout_s)
    if line is None or not line.startswith(READY_PREFIX):
        server = ServerProcess(proc, "", stderr_file)
        server.stop(grace_s=2)
        tail = server.stderr_text().strip().splitlines()[-5:]
        stderr_file.close()
        raise RuntimeError(f"server did not start (exit {proc.returncode}): {' | '.join(tail)}")
    return ServerProcess(proc, line[len(READY_PREFIX):], stderr_file)


def _read_line(proc: subprocess.Popen, timeout_s: float) -> str | None:
    """The first stdout line, or None on EOF or timeout (without blocking past it)."""
    assert proc.stdout is not None, "started with stdout=PIPE"
    fd = proc.stdout.fileno()
    buf = b""
    deadline = time.monotonic() + timeout_s
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0 or not sel.select(left):
                return None
            data = os.read(fd, 4096)
            if not data:
                return None
            buf += data
    return buf.split(b"\n", 1)[0].decode().strip()
