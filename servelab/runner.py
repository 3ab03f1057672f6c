"""The composition root of one run: config -> target -> load process -> spool -> store.

Everything it uses is passed in or imported from the packages that own it; the CLI only
parses flags into a `RunConfig` and calls `execute_run`.
"""

from __future__ import annotations

import contextlib
import json
import platform
import subprocess
import threading
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path

from servelab import __version__
from servelab.config import RunConfig
from servelab.errors import UserError
from servelab.procs import spawn, stop
from servelab.sampling import StepProbes
from servelab.targets import Target, builtin_server, normalize_url
from store import ingest, runs

Progress = Callable[[dict], None]
EXIT_UNREACHABLE = 3


def host_info() -> dict:
    import os

    import psutil

    return {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "mem_bytes": psutil.virtual_memory().total,
    }


@contextlib.contextmanager
def open_target(cfg: RunConfig) -> Iterator[Target]:
    """Yields the run's Target (`.url`, and `.pid` of the built-in server), starting it if asked."""
    if cfg.target == "builtin":
        with builtin_server(cfg.server) as target:
            yield target
    else:
        yield Target(normalize_url(cfg.target))


def execute_run(cfg: RunConfig, store_path: str, on_progress: Progress | None = None) -> str:
    """Runs one single-step run and ingests it; returns the run id.

    The run row is created first (status `running`), so a crash at any later point leaves a
    run that `store.ingest.recover` finds, ingests and marks `interrupted`.
    """
    if cfg.target != "builtin":
        normalize_url(cfg.target)  # a bad URL fails before anything is recorded
    ingest.recover(store_path)
    run_id = runs.new_run_id()
    config = cfg.model_dump(mode="json")
    status, error = "failed", None
    # Lock first: a run row is only ever `running` while its lock exists, so recovery
    # finds every run whose process died.
    with runs.RunLock(store_path, run_id) as lock:
        runs.create_run(store_path, run_id, config, cfg.target, cfg.label, host_info(),
                        __version__)
        try:
            status = _run_step(cfg, store_path, run_id, 0, lock.fileno(), on_progress)
        except UserError as exc:
            error = str(exc)
            raise
        except KeyboardInterrupt:
            status, error = "interrupted", "interrupted by the user"
            raise
        finally:
            ingest.ingest_step(store_path, run_id, 0)
            runs.finish_run(store_path, run_id, status, error)
    if status == "completed":
        from servelab.results import record_self_check

        record_self_check(store_path, run_id)
    return run_id


def _run_step(cfg: RunConfig, store_path: str, run_id: str, step: int, lock_fd: int,
              on_progress: Progress | None) -> str:
    load = cfg.load
    runs.add_step(store_path, run_id, step, load.mode, load.users if load.mode == "closed" else None,
                  load.rate, load.duration_s, load.warmup)
    spool = runs.spool_dir(store_path, run_id, step)
    if on_progress and cfg.target == "builtin":
        on_progress({"note": f"starting the built-in server ({cfg.server.model} model)"})
    with open_target(cfg) as target:
        url = target.url
        spec = {
            "run_id": run_id,
            "step": step,
            "producer": "w0",
            "target_url": url,
            "builtin": cfg.target == "builtin",
            "load": load.model_dump(mode="json"),
            "spool_dir": str(spool),
        }
        spec_path = Path(spool) / "spec-w0.json"
        spec_path.write_text(json.dumps(spec))
        probes = StepProbes(cfg.profile, store_path, run_id, step, spool, url, target.pid,
                            load.duration_s, lock_fd, on_progress, warmup_s=load.warmup)
        try:
            rc, err = _run_worker(spec_path, lock_fd, probes.relay, on_spawn=probes.start)
        finally:
            probes.finish()
    if rc == EXIT_UNREACHABLE:
        raise UserError(err or f"cannot reach {url}")
    if rc == 0:
        return "completed"
    if rc < 0:
        return "interrupted"  # the load generator was killed by a signal
    raise UserError(f"the load generator failed (exit {rc}): {err}")


def _run_worker(spec_path: Path, lock_fd: int, on_progress: Progress | None,
                on_spawn: Callable[[int], None] | None = None) -> tuple[int, str]:
    """Runs the Locust worker process; relays its progress lines; returns (rc, last stderr).

    `on_spawn(pid)` runs right after the worker starts (the samplers watch its pid)."""
    # The lock's file descriptor is inherited, so the run stays locked while the worker lives
    # even if this process is killed.
    proc = spawn(["-m", "loadtest.worker", "--spec", str(spec_path)], pass_fds=(lock_fd,),
                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    err_tail: deque[str] = deque(maxlen=5)
    threading.Thread(target=lambda: err_tail.extend(proc.stderr), daemon=True).start()
    try:
        if on_spawn:
            on_spawn(proc.pid)
        for line in proc.stdout:
            if on_progress and line.startswith("{"):
                with contextlib.suppress(ValueError):
                    on_progress(json.loads(line))
        proc.wait()
    finally:
        stop(proc, timeout_s=30)
    return proc.returncode, (err_tail[-1].strip() if err_tail else "")
