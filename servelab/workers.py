"""Load-generator processes of one step: one (`w0`) or N (`w0`..`w<N-1>`) on this machine.

Each worker is `python -m loadtest.worker --spec spec-w<i>.json` with its shard of the load:
open loop, every N-th arrival of the one seeded schedule (round-robin, see
docs/architecture.md "Scaling out"); closed loop, its share of the users (and of
max_requests). With N > 1 all share one t0 on CLOCK_MONOTONIC, START_LEAD_S ahead, so the
shards start together after their warm-ups. Their progress lines are summed into one.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

# shard_load, split and START_LEAD_S live below the CLI (the Locust master uses them too);
# imported from here still works.
from loadtest.sharding import START_LEAD_S, shard_load, split  # noqa: F401
from servelab.config import LoadConfig
from servelab.procs import spawn, stop

Progress = Callable[[dict], None]
SUMMED = ("sent", "done", "errors", "inflight")


def write_specs(base: dict, load: LoadConfig, n: int, spool: Path) -> list[Path]:
    """spec-w<i>.json for each worker; `base` holds the fields every worker shares."""
    t0 = time.perf_counter_ns() + round(START_LEAD_S * 1e9) if n > 1 else None
    paths = []
    for i in range(n):
        first_user = sum(split(load.users, n, k) for k in range(i)) if load.mode == "closed" else 0
        spec = {**base, "producer": f"w{i}", "load": shard_load(load, n, i).model_dump(mode="json"),
                "shard": i, "shards": n, "t0_ns": t0, "first_user": first_user}
        path = Path(spool) / f"spec-w{i}.json"
        path.write_text(json.dumps(spec))
        paths.append(path)
    return paths


class _Sum:
    """The latest progress line of each worker, summed (elapsed: the furthest along)."""

    def __init__(self, n: int, on_progress: Progress | None):
        self.latest: list[dict | None] = [None] * n
        self.done: list[dict] = []
        self.on_progress, self.lock = on_progress, threading.Lock()

    def feed(self, i: int, msg: dict) -> None:
        if self.on_progress is None:
            return
        if "progress" not in msg:
            if len(self.latest) == 1:
                self.on_progress(msg)  # one worker: its lines as they are
            elif isinstance(msg.get("done"), dict):
                self.done.append(msg["done"])
            return
        with self.lock:
            self.latest[i] = msg["progress"]
            seen = [p for p in self.latest if p]
            total = {k: sum(p.get(k, 0) for p in seen) for k in SUMMED}
            total.update(elapsed_s=max(p.get("elapsed_s", 0) for p in seen), duration_s=seen[0].get("duration_s"))
            self.on_progress({"progress": total})

    def finish(self) -> None:
        """N workers: one summed `done` line once all have ended."""
        if self.on_progress and len(self.latest) > 1 and self.done:
            keys = ("sent", "completed", "errors")
            self.on_progress({"done": {k: sum(d.get(k, 0) for d in self.done) for k in keys}})


def _relay(proc: subprocess.Popen, i: int, summed: _Sum) -> None:
    assert proc.stdout is not None, "started with stdout=PIPE"
    for line in proc.stdout:
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                summed.feed(i, json.loads(line))


def _supervise(cmds: list[list[str]], lock_fd: int, summed: _Sum, relayed: int,
               on_spawn: Callable[[int], None] | None, watched: int | None,
               env: dict[str, str] | None = None) -> list[tuple[int, str]]:
    """Runs `python cmd...` for each cmd to its end; [(exit code, last stderr line)] in order.

    The first `relayed` processes' stdout lines feed `summed` (the others' are drained);
    `on_spawn` gets process `watched`'s pid (the samplers watch it). The run lock's fd is
    inherited, so the run stays locked while any of them lives, even if the CLI is killed."""
    procs = [spawn(cmd, pass_fds=(lock_fd,), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for cmd in cmds]
    tails: list[deque[str]] = [deque(maxlen=5) for _ in procs]
    threads = [threading.Thread(target=lambda p=p, t=t: t.extend(p.stderr), daemon=True)
               for p, t in zip(procs, tails)]
    threads += [threading.Thread(target=_relay, args=(p, i, summed), daemon=True) if i < relayed
                else threading.Thread(target=lambda p=p: p.stdout.read(), daemon=True)
                for i, p in enumerate(procs)]
    for t in threads:
        t.start()
    try:
        if on_spawn and watched is not None:
            on_spawn(procs[watched].pid)
        for p in procs:
            p.wait()
        for t in threads:
            t.join(5)
        summed.finish()
    finally:
        for p in procs:
            stop(p, timeout_s=30)
    return [(p.returncode, t[-1].strip() if t else "") for p, t in zip(procs, tails)]


def run_workers(spec_paths: list[Path], lock_fd: int, on_progress: Progress | None,
                on_spawn: Callable[[int], None] | None = None,
                env: dict[str, str] | None = None) -> list[tuple[int, str]]:
    """Runs every worker to its end; [(exit code, last stderr line)] in worker order.

    `on_spawn(pid)` gets the first worker's pid (the samplers watch it).
    `env`: the workers' environment (default: this process's; API keys travel only there)."""
    cmds = [["-m", "loadtest.worker", "--spec", str(p)] for p in spec_paths]
    return _supervise(cmds, lock_fd, _Sum(len(cmds), on_progress), len(cmds), on_spawn, 0, env)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on `host` right now (the master binds it a moment later)."""
    import socket

    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def master_address(bind: str, remote: int) -> tuple[str, int]:
    """(host, port) for the master from `--master-bind HOST[:PORT]`; port 0 or none picks one."""
    host, _, port = bind.rpartition(":") if ":" in bind else (bind, ":", "0")  # checked by RunConfig
    return host, int(port) or free_port("127.0.0.1" if host in ("0.0.0.0", "*") else host)


def run_with_master(spec_path: Path, local: int, remote: int, bind: tuple[str, int], lock_fd: int,
                    on_progress: Progress | None, on_spawn: Callable[[int], None] | None = None,
                    env: dict[str, str] | None = None) -> list[tuple[int, str]]:
    """Runs the step under a Locust master (`python -m loadtest.master`) with `local` workers
    on this machine and `remote` ones that connect from elsewhere; [(exit code, last stderr
    line)] for the master, then each local worker."""
    host, port = bind
    connect = f"127.0.0.1:{port}" if host in ("0.0.0.0", "*") else f"{host}:{port}"
    if remote and on_progress:
        on_progress({"note": f"waiting for {remote} worker(s) from other machines: run there "
                             f"`python -m loadtest.worker --master <this machine>:{port} --ship`"})
    cmds = [["-m", "loadtest.master", "--spec", str(spec_path), "--workers", str(local + remote),
             "--bind", f"{host}:{port}"]] + [["-m", "loadtest.worker", "--master", connect]] * local
    # Only the master's lines are relayed: it already sums its workers' progress.
    return _supervise(cmds, lock_fd, _Sum(1, on_progress), 1, on_spawn, 1 if local else None, env)
