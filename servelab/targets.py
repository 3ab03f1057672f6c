"""Targets of a run: the built-in reference server (launched per run) or a given URL."""

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
from urllib.parse import urlsplit

from servelab.config import ServerConfig
from servelab.errors import UserError
from servelab.procs import spawn, stop

READY = re.compile(r"listening on (http://\S+)")


def normalize_url(url: str) -> str:
    """`http://h:8000/v1/` -> `http://h:8000`: the base the load generator appends paths to."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UserError(f"bad target URL {url!r}: expected 'builtin' or http(s)://HOST[:PORT]")
    try:
        parts.port  # noqa: B018 - validates the port
    except ValueError:
        raise UserError(f"bad target URL {url!r}: invalid port") from None
    path = parts.path.rstrip("/")
    if path.endswith("/v1"):
        path = path[: -len("/v1")]
    return f"{parts.scheme}://{parts.netloc}{path}"


@dataclass(frozen=True)
class Target:
    """A run's target: its base URL, and the server's pid when servelab launched it."""

    url: str
    pid: int | None = None


def _drain(stream, sink: deque) -> None:
    for line in stream:
        sink.append(line.rstrip("\n"))


@contextlib.contextmanager
def builtin_server(cfg: ServerConfig, start_timeout_s: float = 120.0) -> Iterator[Target]:
    """Run `python -m serving` with `cfg` for the duration of the block; yields its Target."""
    proc = spawn(
        ["-m", "serving", "--config-json", cfg.model_dump_json()],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cfg.child_env(os.environ),  # api_keys travel here, never in argv
    )
    err_tail: deque[str] = deque(maxlen=20)
    threading.Thread(target=_drain, args=(proc.stderr, err_tail), daemon=True).start()
    try:
        url = _wait_ready(proc, err_tail, start_timeout_s)
        threading.Thread(target=_drain, args=(proc.stdout, deque(maxlen=1)), daemon=True).start()
        yield Target(url, proc.pid)
    finally:
        stop(proc)


def _wait_ready(proc: subprocess.Popen, err_tail: deque, timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            proc.wait(5)
            detail = err_tail[-1] if err_tail else f"exit code {proc.returncode}"
            raise UserError(f"the built-in server did not start: {detail}")
        if m := READY.search(line):
            return m.group(1)
    raise UserError(f"the built-in server did not start within {timeout_s:.0f} s")
