"""What runs beside one step's load: the sampler process and the torch-profiler window.

`StepProbes.prepare()` runs before the load (it plans the torch window and warms the
profiler up), `start(loadgen_pid)` once the load generator is spawned (the sampler), and
`finish()` after it exits (always, also on errors): it stops the sampler and fetches the
torch window's trace and operators, which the server builds only then. The window itself
is timed from the step's t0, learnt from the first progress line of the started step.

Notices are held back until the load generator reports progress (`relay` wraps the
progress callback), so a run that fails before any load (an unreachable target) still
ends with its one error line. Every problem (no GPU, an unknown device index, a profiler
window longer than the step, a target without the profiler endpoint) is one notice
through `on_progress({"note": ...})` and the run goes on without that probe.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from servelab.config import SamplerConfig
from servelab.engine_profile import EngineWindow, ProfilerWindow
from servelab.procs import spawn, stop

Progress = Callable[[dict], None]
READY_TIMEOUT_S = 15.0
RESULT_TIMEOUT_S = 600.0  # building a long window's operator table takes minutes on a small CPU


def _post(url: str, body: dict, timeout_s: float = 60.0) -> dict:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout_s) as resp:
        return json.loads(resp.read())


class TorchWindow(ProfilerWindow):
    """A background thread: wait until `at_s` after the step's t0, POST /v1/profiler/start,
    wait `length_s`, POST stop (deferred). `collect()`, after the load, fetches the trace
    and operators: making them takes the server seconds of CPU, which must not land on
    measured requests."""

    thread_name = "servelab-torch-window"

    def __init__(self, base_url: str, at_s: float, length_s: float, trace_dir: Path, name: str):
        super().__init__(base_url, at_s, length_s)
        self.trace_dir, self.name = trace_dir, name

    def warm(self) -> str | None:
        """Start and discard a window before the load: torch's first profiler start takes over
        a second of the server's event loop. Returns an error text, or None."""
        try:
            _post(f"{self.base_url}/v1/profiler/start", {"dir": str(self.trace_dir), "name": "warmup.json"})
            _post(f"{self.base_url}/v1/profiler/stop", {"discard": True})
        except (urllib.error.URLError, OSError, ValueError) as exc:
            return f"the target refused the torch-profiler start ({exc})"
        return None

    def _run(self) -> None:
        if not self._window_begins("torch-profiler"):
            return
        try:
            _post(f"{self.base_url}/v1/profiler/start", {"dir": str(self.trace_dir), "name": self.name})
        except (urllib.error.URLError, OSError, ValueError) as exc:
            self.error = f"the target refused the torch-profiler start ({exc})"
            return
        started = time.perf_counter_ns()  # the requests' clock (CLOCK_MONOTONIC)
        self.abort.wait(self.length_s)
        try:
            self.stopped = _post(f"{self.base_url}/v1/profiler/stop", {"defer": True})
        except (urllib.error.URLError, OSError, ValueError) as exc:
            self.error = f"the torch-profiler stop failed ({exc})"
        self.window_ns = (started, time.perf_counter_ns())

    def collect(self) -> dict | None:
        """The window's result (trace_path, window_s, operators) once the thread is done."""
        if self.error or not self.stopped:
            return None
        if not self.stopped.get("pending"):
            return self.stopped  # a target that made the result at stop
        try:
            return _post(f"{self.base_url}/v1/profiler/result", {}, timeout_s=RESULT_TIMEOUT_S)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            self.error = f"the torch-profiler result failed ({exc})"
            return None


class StepProbes:
    """The sampler process and torch window of one step."""

    def __init__(self, cfg: SamplerConfig, store_path: str, run_id: str, step: int, spool: Path,
                 target_url: str, server_pid: int | None, duration_s: float, lock_fd: int,
                 on_progress: Progress | None = None, warmup_s: float = 0.0,
                 server_roles: dict[str, int] | None = None, engine: str | None = None):
        self.cfg, self.store_path, self.run_id, self.step = cfg, store_path, run_id, step
        self.spool, self.url, self.server_pid = Path(spool), target_url, server_pid
        self.duration_s, self.lock_fd, self.on_progress = duration_s, lock_fd, on_progress
        self.warmup_s = warmup_s
        self.engine = engine  # a launched engine's kind: vLLM and SGLang have their own window
        # With replicas: every replica (server, server1, ...) and the load balancer (lb).
        self.server_roles = server_roles or {}
        self.proc: subprocess.Popen | None = None
        self.window: TorchWindow | EngineWindow | None = None
        self.pending: list[str] | None = []  # None once the load has started

    def note(self, text: str) -> None:
        if self.pending is not None:
            self.pending.append(text)
        elif self.on_progress:
            self.on_progress({"note": text})

    def relay(self, msg: dict) -> None:
        """The load generator's progress callback: first flush the held-back notices."""
        if self.pending is not None:
            held, self.pending = self.pending, None
            for text in held:
                self.note(text)
        self._begin_window(msg)
        if self.on_progress:
            self.on_progress(msg)

    def start(self, loadgen_pid: int | None) -> None:
        if self.cfg.enabled:
            self._start_sampler(loadgen_pid)
        else:
            self.note("sampling off (profile.enabled is false)")

    def _start_sampler(self, loadgen_pid: int | None) -> None:
        pids = {k: v for k, v in (("server", self.server_pid), ("loadgen", loadgen_pid)) if v}
        pids.update(self.server_roles)
        spec = {"spool_dir": str(self.spool), "gpu": self.cfg.gpu, "gpu_hz": self.cfg.gpu_hz,
                "host_hz": self.cfg.host_hz, "device_indices": self.cfg.device_indices, "pids": pids,
                "parent_pid": os.getpid()}
        spec_path = self.spool / "spec-samplers.json"
        spec_path.write_text(json.dumps(spec))
        # The run lock's fd is inherited: the run stays locked while the sampler still writes.
        self.proc = spawn(["-m", "profilers", "--spec", str(spec_path)], pass_fds=(self.lock_fd,),
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=_pump, args=(self.proc.stdout, lines), daemon=True).start()
        for _ in range(64):
            try:
                line = lines.get(timeout=READY_TIMEOUT_S)
            except queue.Empty:
                line = None
            if line is None:
                self.note("the sampler did not start: the run continues without samples")
                return
            msg = _json(line)
            if "note" in msg:
                self.note(str(msg["note"]))
            elif msg.get("event") == "ready":
                return

    def _window_plan(self) -> tuple[float, float] | None:
        """(at_s, length_s) of the torch window, counted from the step's t0; None (with a
        notice) when none is asked for or it does not fit in the step."""
        length, at = self.cfg.torch_profile_s, self.cfg.torch_profile_at_s
        at = self.warmup_s if at is None else at  # steady state begins after the warm-up
        if length is None:
            return None
        if at + length > self.duration_s:
            self.note(f"torch-profiler window ({length:g} s at {at:g} s) is longer than the step"
                      f" ({self.duration_s:g} s): no torch profile for this step")
            return None
        return at, length

    def prepare(self) -> None:
        """Before the load starts: plan the torch window and warm the profiler up (torch's
        first start holds the server's event loop for over a second)."""
        plan = self._window_plan()
        if plan is None:
            return
        if self.engine in ("vllm", "sglang"):
            self.window = EngineWindow(self.url, *plan, self.engine)
            return
        from store.profiles import trace_path

        dest = trace_path(self.store_path, self.run_id, self.step)
        window = TorchWindow(self.url, *plan, dest.parent, dest.name)
        problem = window.warm()
        if problem:
            self.note(f"{problem}: no torch profile for step {self.step}")
            return
        self.window = window
        if len(self.server_roles) > 1:
            self.note(f"torch profile: replica 0 only ({self.url})")

    def _begin_window(self, msg: dict) -> None:
        """At the first progress line of a started step (a Locust master reports elapsed 0
        while its workers connect), time the window from the step's t0."""
        w = self.window
        if w is None or w.t0_ns is not None or not isinstance(msg.get("progress"), dict):
            return
        elapsed = float(msg["progress"].get("elapsed_s") or 0.0)
        if elapsed <= 0:
            return
        w.t0_ns = time.perf_counter_ns() - round(elapsed * 1e9)
        w.thread.start()

    def finish(self, collect: bool = True) -> None:
        """Stop the sampler (SIGTERM) and, unless `collect` is False (the load did not end by
        itself), fetch and store the torch window's result."""
        if self.proc is not None:
            stop(self.proc, timeout_s=10)
        w = self.window
        if w is None:
            return
        w.abort.set()
        if w.t0_ns is None:  # the load never reported progress: the window never began
            self.note(f"no torch profile for step {self.step}: the step ended before its window began")
            return
        w.thread.join(120)
        if isinstance(w, EngineWindow):  # the engine wrote its own trace
            self.note(w.summary())
            return
        if not collect:
            self.note(f"no torch profile for step {self.step}: the load did not finish")
            return
        if w.stopped and w.stopped.get("pending"):
            self.note("torch profile: building the trace and operator table on the server...")
        result = w.collect()
        if w.error or not result:
            self.note(f"no torch profile for step {self.step}: {w.error or 'no result'}")
            return
        self._save(result, Path(w.trace_dir) / w.name, w.window_ns)

    def _save(self, result: dict, dest: Path, window_ns: tuple[int | None, int | None]) -> None:
        from store.profiles import save_operators

        src = Path(str(result.get("trace_path") or ""))
        if src.is_file() and src != dest:
            shutil.copyfile(src, dest)
        kept = str(dest) if dest.is_file() else None
        if kept is None:
            self.note(f"the torch trace stays on the target at {src}")
        n = save_operators(self.store_path, self.run_id, self.step, result.get("operators") or [],
                           kept or str(src), result.get("window_s"), window_ns)
        if n == 0:
            self.note(f"torch profile of step {self.step}: the window recorded no operators (an idle server?)")
            return
        self.note(f"torch profile: {n} top operators stored; trace {kept or src}")


def _pump(stream, lines: queue.Queue) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


def _json(line: str) -> dict:
    with contextlib.suppress(ValueError):
        obj = json.loads(line)
        if isinstance(obj, dict):
            return obj
    return {}
