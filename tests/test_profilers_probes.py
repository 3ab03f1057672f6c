"""servelab/sampling.py: notices of the probes beside a step, without a server."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from servelab.config import SamplerConfig
from servelab.sampling import StepProbes
from store import profiles

CLOSED = "http://127.0.0.1:9"  # the discard port: nothing listens there


def probes(tmp_path, notes, **cfg) -> StepProbes:
    return StepProbes(SamplerConfig(enabled=False, **cfg), str(tmp_path / "s.duckdb"), "r1", 0, tmp_path,
                      CLOSED, None, 2.0, -1, lambda m: "note" in m and notes.append(m["note"]))


def test_a_target_without_the_profiler_endpoint_is_one_notice(tmp_path):
    notes: list[str] = []
    p = probes(tmp_path, notes, torch_profile_s=0.2, torch_profile_at_s=0.0)
    p.prepare()  # the warm-up start is refused: no window
    p.start(None)
    p.relay({"progress": {}})
    time.sleep(0.3)
    p.finish()
    assert len(notes) == 2 and notes[0].startswith("the target refused the torch-profiler start")
    assert notes[0].endswith(": no torch profile for step 0")
    assert notes[1] == "sampling off (profile.enabled is false)"


def test_notices_wait_for_the_load_and_are_dropped_when_it_never_starts(tmp_path):
    notes: list[str] = []
    p = probes(tmp_path, notes, torch_profile_s=3.0)
    p.prepare()
    p.start(None)
    assert notes == []  # held back: an unreachable target must end with one error line only
    p.finish()
    assert notes == []
    p = probes(tmp_path, notes, torch_profile_s=3.0)
    p.prepare()
    p.relay({"progress": {}})
    assert notes[-1] == ("torch-profiler window (3 s at 0 s) is longer than the step (2 s):"
                         " no torch profile for this step")


def test_the_window_starts_after_the_warm_up_by_default(tmp_path):
    notes: list[str] = []
    p = StepProbes(SamplerConfig(enabled=False, torch_profile_s=1.0), str(tmp_path / "s.duckdb"), "r1", 0,
                   tmp_path, CLOSED, None, 2.0, -1, lambda m: "note" in m and notes.append(m["note"]), warmup_s=1.5)
    p.prepare()
    p.relay({})
    assert notes[-1].startswith("torch-profiler window (1 s at 1.5 s) is longer than the step (2 s)")


class _FakeProfiler(BaseHTTPRequestHandler):
    """The three profiler routes, recording when each was called (perf_counter_ns)."""

    calls: list[tuple[str, int, dict]] = []

    def do_POST(self):  # noqa: N802 - http.server's name
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        self.calls.append((self.path, time.perf_counter_ns(), body))
        out = {"/v1/profiler/start": {"status": "started"},
               "/v1/profiler/stop": {"status": "stopped", "window_s": 0.3, "pending": True},
               "/v1/profiler/result": {"status": "stopped", "window_s": 0.3, "trace_path": "/nowhere.json",
                                       "operators": [{"name": "aten::mm", "calls": 3, "self_cpu_us": 9.0}]}}
        data = json.dumps(out.get(self.path.split("?")[0], {})).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def test_the_window_is_timed_from_the_steps_t0_and_its_result_fetched_after_the_load(tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeProfiler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _FakeProfiler.calls = []
    notes: list[str] = []
    store = str(tmp_path / "s.duckdb")
    try:
        p = StepProbes(SamplerConfig(enabled=False, torch_profile_s=0.3, torch_profile_at_s=0.5), store, "r1", 0,
                       tmp_path, f"http://127.0.0.1:{server.server_port}", None, 2.0, -1,
                       lambda m: "note" in m and notes.append(m["note"]))
        p.prepare()  # warm-up: a start and a discarded stop, before any load
        assert [(c[0], c[2]) for c in _FakeProfiler.calls] == [
            ("/v1/profiler/start", {"dir": str(tmp_path / "s.duckdb.traces"), "name": "warmup.json"}),
            ("/v1/profiler/stop", {"discard": True})]
        p.start(None)
        p.relay({"progress": {"elapsed_s": 0.0}})  # a Locust master while its workers connect
        time.sleep(0.6)
        assert len(_FakeProfiler.calls) == 2  # not yet: the step has not started
        now = time.perf_counter_ns()
        p.relay({"progress": {"elapsed_s": 0.2}})  # so the step's t0 was ~0.2 s ago
        time.sleep(1.0)
        assert [c[0] for c in _FakeProfiler.calls[2:]] == ["/v1/profiler/start", "/v1/profiler/stop"]
        assert _FakeProfiler.calls[3][2] == {"defer": True}
        started = _FakeProfiler.calls[2][1]
        assert 0.25 < (started - now) / 1e9 < 0.45  # 0.5 s after t0, not after the progress line
        p.finish()
    finally:
        server.shutdown()
    assert _FakeProfiler.calls[-1][0] == "/v1/profiler/result"
    ops = profiles.get_operators(store, "r1")
    assert [o["name"] for o in ops] == ["aten::mm"]
    assert ops[0]["window_start_ns"] >= started and ops[0]["window_end_ns"] >= _FakeProfiler.calls[3][1]
    assert any("building the trace and operator table" in n for n in notes)
