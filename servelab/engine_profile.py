"""The profiler window on an engine that has its own: vLLM's and SGLang's `/start_profile`
and `/stop_profile` (POST, empty body), timed like the built-in server's window
(servelab/sampling.py TorchWindow: from the step's t0, after warm-up by default).

The engine writes the trace itself, where it was told to when started (TRACE_HOW); without
that the endpoints do not exist, and the run says so once. servelab records when the
window ran and says where the trace is; it reads no operators back from an engine.
"""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request

TRACE_HOW = {"vllm": "--profiler-config '{\"profiler\": \"torch\", \"torch_profiler_dir\": DIR}' in --engine-args",
             "sglang": "SGLANG_TORCH_PROFILER_DIR=DIR in its environment"}


def _post(url: str, timeout_s: float = 120.0) -> None:
    req = urllib.request.Request(url, data=b"", method="POST")
    with urllib.request.urlopen(req, timeout=timeout_s) as resp:
        resp.read()


class ProfilerWindow:
    """What a profiler window on a background thread shares (this one and sampling.TorchWindow):
    servelab/sampling.py sets `t0_ns` and starts `thread` at the step's t0, and sets `abort`
    at the step's end; `_run` waits for `at_s` (`_window_begins`), starts, holds `length_s`,
    stops, and keeps `window_ns` (the requests' clock) or an `error` text."""

    thread_name = "servelab-profiler-window"

    def __init__(self, base_url: str, at_s: float, length_s: float):
        self.base_url, self.at_s, self.length_s = base_url, at_s, length_s
        self.abort = threading.Event()
        self.stopped: dict | None = None
        self.error: str | None = None
        self.window_ns: tuple[int | None, int | None] = (None, None)
        self.t0_ns: int | None = None  # the step's t0, set when the load reports progress
        self.thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)

    def _run(self) -> None:
        raise NotImplementedError

    def _window_begins(self, what: str) -> bool:
        """Wait until `at_s` after the step's t0; False (and the error said) when the step ends first."""
        wait_s = self.at_s - (time.perf_counter_ns() - (self.t0_ns or time.perf_counter_ns())) / 1e9
        if self.abort.wait(max(0.0, wait_s)):
            self.error = f"the step ended before the {what} window began"
            return False
        return True


class EngineWindow(ProfilerWindow):
    """A window on an engine's own profiler, with TorchWindow's interface; `collect()` gives no operators."""

    thread_name = "servelab-engine-window"

    def __init__(self, base_url: str, at_s: float, length_s: float, kind: str):
        super().__init__(base_url, at_s, length_s)
        self.kind = kind

    def warm(self) -> str | None:
        return None  # nothing to warm: the engine's profiler is started only in the window

    def _run(self) -> None:
        if not self._window_begins("profiler"):
            return
        try:
            _post(f"{self.base_url}/start_profile")
        except (urllib.error.URLError, OSError) as exc:
            self.error = (f"the {self.kind} engine refused /start_profile ({exc}); start it with "
                          f"{TRACE_HOW.get(self.kind, 'its profiler on')}")
            return
        started = time.perf_counter_ns()
        self.abort.wait(self.length_s)
        # The window ends when the stop is asked: the engine then writes its trace before it
        # answers (vLLM on a small CPU: tens of seconds), which is not profiled time.
        self.window_ns = (started, time.perf_counter_ns())
        try:
            _post(f"{self.base_url}/stop_profile", timeout_s=600.0)
            self.stopped = {"pending": False}
        except (urllib.error.URLError, OSError) as exc:
            self.error = f"the {self.kind} engine's /stop_profile failed ({exc})"

    def collect(self) -> dict | None:
        return None

    def summary(self) -> str:
        """What the run says about the window, once it ended."""
        if self.error:
            return f"no {self.kind} profile: {self.error}"
        start, end = self.window_ns
        secs = (end - start) / 1e9 if start and end else self.length_s
        return f"{self.kind} profile: a {secs:.1f} s window; the engine wrote its trace to its profiler directory"
