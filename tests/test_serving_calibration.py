"""Calibration mode and the server process: exact timings, the send-time log, clean exits.

Real parts only: the server runs as `python -m serving` in a child process; the client is
httpx in this process, on the same perf_counter_ns clock as the server's log.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import httpx
import pytest

from servelab.config import ServerConfig
from serving.launch import launch

TTFT_MS, ITL_MS = 40.0, 5.0
# Typical error is under 1 ms, but this 2-core VM is shared with other test runs: medians
# are held to TOL_MS, single samples only to MAX_MS.
TOL_MS = 3.0
MAX_MS = 50.0

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def calib(tmp_path_factory):
    log = tmp_path_factory.mktemp("calib") / "calib.jsonl"
    cfg = ServerConfig(calibration=True, calib_ttft_ms=TTFT_MS, calib_itl_ms=ITL_MS, calib_log=str(log))
    with launch(cfg, timeout_s=30) as server:
        yield server, log


def sse_events(response: httpx.Response) -> list[tuple[int, str]]:
    """(perf_counter_ns at arrival, data payload) for every SSE `data:` line."""
    out = []
    for line in response.iter_lines():
        if line.startswith("data: "):
            out.append((time.perf_counter_ns(), line[len("data: "):]))
    return out


def stream(url: str, path: str, body: dict) -> tuple[int, list[tuple[int, str]]]:
    with httpx.Client(timeout=10) as client:
        t_send = time.perf_counter_ns()
        with client.stream("POST", url + path, json=body) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            return t_send, sse_events(response)


def lateness_ms(rec: dict) -> list[float]:
    """How late each logged chunk left, against t_recv + TTFT + i * ITL."""
    return [(t - rec["t_recv_ns"]) / 1e6 - (TTFT_MS + i * ITL_MS) for i, t in enumerate(rec["chunk_ns"])]


def records_since(path, t0_ns: int, count: int, timeout_s: float = 2.0) -> list[dict]:
    """Log records of requests received after t0_ns, waiting for `count` of them: a line is
    written just after the last byte is sent, so a fast client can read [DONE] before it."""
    deadline = time.monotonic() + timeout_s
    while True:
        records = [json.loads(line) for line in path.read_text().splitlines()]
        records = [r for r in records if r["t_recv_ns"] >= t0_ns]
        if len(records) >= count or time.monotonic() > deadline:
            return records
        time.sleep(0.01)


def test_stream_has_exactly_max_tokens_chunks_then_timings_and_done(calib):
    server, _ = calib
    _, events = stream(server.url, "/v1/completions", {"prompt": "hello", "max_tokens": 7, "stream": True})
    assert events[-1][1] == "[DONE]"
    chunks = [json.loads(data) for _, data in events[:-1]]
    assert [c["choices"][0]["text"] for c in chunks] == ["x"] * 7
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None] * 6 + ["length"]
    timings = chunks[-1]["servelab"]
    assert timings["prompt_tokens"] == 5 and timings["output_tokens"] == 7 and timings["batch_size"] == 1
    assert "servelab" not in chunks[0]


def test_chat_stream_with_usage_puts_timings_on_the_usage_chunk(calib):
    server, _ = calib
    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, "stream": True,
            "stream_options": {"include_usage": True}}
    _, events = stream(server.url, "/v1/chat/completions", body)
    assert events[-1][1] == "[DONE]"
    chunks = [json.loads(data) for _, data in events[:-1]]
    content, final = chunks[:-1], chunks[-1]
    assert len(content) == 4
    assert content[0]["choices"][0]["delta"] == {"role": "assistant", "content": "x"}
    assert content[1]["choices"][0]["delta"] == {"content": "x"}
    assert all("servelab" not in c for c in content)
    assert final["choices"] == [] and final["usage"]["completion_tokens"] == 4
    assert final["usage"]["prompt_tokens"] == len("user: hi\nassistant: ")
    assert final["servelab"]["output_tokens"] == 4


def test_stream_timings_match_the_schedule_and_the_log(calib):
    server, log = calib
    t0 = time.perf_counter_ns()
    n = 20
    t_send, events = stream(server.url, "/v1/completions", {"prompt": "t", "max_tokens": n, "stream": True})
    arrivals = [t for t, _ in events[:n]]
    ttft_ms = (arrivals[0] - t_send) / 1e6
    gaps_ms = [(b - a) / 1e6 for a, b in zip(arrivals, arrivals[1:])]
    assert TTFT_MS <= ttft_ms <= TTFT_MS + MAX_MS
    assert sorted(gaps_ms)[n // 2] == pytest.approx(ITL_MS, abs=1.0)  # median gap

    records = records_since(log, t0, 1)
    assert len(records) == 1
    rec = records[0]
    assert len(rec["chunk_ns"]) == n
    assert t_send < rec["t_recv_ns"] < rec["chunk_ns"][0] <= rec["t_done_ns"]
    late_ms = lateness_ms(rec)
    assert min(late_ms) >= 0 and sorted(late_ms)[n // 2] <= TOL_MS and max(late_ms) <= MAX_MS
    # One clock for both processes: each chunk arrives right around its logged send time.
    # The log stamp is taken just after the socket write returns, so a fast reader may see
    # the bytes some microseconds before it (or, once, milliseconds: the server descheduled
    # between the write and the stamp on a busy machine).
    transit_ms = [(arrived - sent) / 1e6 for sent, arrived in zip(rec["chunk_ns"], arrivals)]
    assert sorted(transit_ms)[1] > -0.5 and sorted(transit_ms)[n // 2] < TOL_MS
    # Absolute deadlines, no drift: chunk i is due TTFT + i*ITL after the server got the
    # request, and the client sees the last few around then too (a hiccup is caught up at once).
    client_late_ms = [(t - rec["t_recv_ns"]) / 1e6 - (TTFT_MS + i * ITL_MS) for i, t in enumerate(arrivals)]
    assert sorted(client_late_ms)[n // 2] <= TOL_MS and sorted(client_late_ms[-5:])[2] <= TOL_MS


def test_non_streaming_waits_the_whole_schedule(calib):
    server, _ = calib
    t0 = time.perf_counter()
    r = httpx.post(server.url + "/v1/completions", json={"prompt": "ab", "max_tokens": 5}, timeout=10)
    elapsed_ms = (time.perf_counter() - t0) * 1e3
    assert r.status_code == 200
    body = r.json()
    assert body["choices"][0]["text"] == "xxxxx" and body["choices"][0]["finish_reason"] == "length"
    assert body["usage"] == {"prompt_tokens": 2, "completion_tokens": 5, "total_tokens": 7}
    assert elapsed_ms >= TTFT_MS + 4 * ITL_MS
    assert r.headers["x-servelab-output-tokens"] == "5"
    assert float(r.headers["x-servelab-prefill-ms"]) == pytest.approx(body["servelab"]["prefill_ms"])


def test_concurrent_streams_keep_their_own_schedules(calib):
    """Judged from the server's log: 8 client threads on 2 cores make client stamps noisy."""
    server, log = calib
    import concurrent.futures as cf

    t0 = time.perf_counter_ns()
    body = {"prompt": "c", "max_tokens": 10, "stream": True}
    with cf.ThreadPoolExecutor(8) as pool:
        counts = list(pool.map(lambda _: len(stream(server.url, "/v1/completions", body)[1]), range(8)))
    assert counts == [11] * 8  # 10 chunks + [DONE]
    records = records_since(log, t0, 8)
    assert len(records) == 8
    every = []
    for rec in records:
        late_ms = lateness_ms(rec)
        assert len(late_ms) == 10 and min(late_ms) >= 0
        # Each stream keeps its schedule (no drift: lateness is against t_recv + TTFT + i * ITL);
        # the 8 client threads share the 2 cores with the server, so one stream's median
        # gets a little more room than the pooled one.
        assert sorted(late_ms)[5] <= 3 * TOL_MS and max(late_ms) <= MAX_MS
        every += late_ms
    assert sorted(every)[len(every) // 2] <= 2 * TOL_MS


def test_sigterm_exits_cleanly_and_flushes_the_log(tmp_path):
    log = tmp_path / "c.jsonl"
    cfg = ServerConfig(calibration=True, calib_ttft_ms=1, calib_itl_ms=1, calib_log=str(log))
    server = launch(cfg, timeout_s=30)
    with server:
        r = httpx.post(server.url + "/v1/completions", json={"prompt": "a", "max_tokens": 3, "stream": True})
        assert r.text.endswith("data: [DONE]\n\n")
        assert server.stop() == 0
    assert len(log.read_text().splitlines()) == 1


def test_config_file_and_sigint(tmp_path):
    path = tmp_path / "server.json"
    path.write_text(json.dumps({"calibration": True, "calib_ttft_ms": 0, "calib_itl_ms": 0}))
    argv = [sys.executable, "-m", "serving", "--config-file", str(path)]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        line = proc.stdout.readline().strip()
        assert line.startswith("servelab serve: listening on http://127.0.0.1:")
        url = line.rsplit(" ", 1)[-1]
        assert httpx.get(url + "/health").json() == {"status": "ok", "model": "small", "params": 0, "calibration": True}
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0
        assert proc.stdout.read() == "" and "Traceback" not in proc.stderr.read()


@pytest.mark.parametrize("args", [
    ["--config-json", '{"port": -1}'],
    ["--config-json", '{"nope": 1}'],
    ["--config-json", "{not json"],
    ["--config-file", "/nonexistent/servelab.json"],
    ["--config-json", '{"model": "enormous"}'],
    ["--config-json", '{"precision": "fp16"}'],
])
def test_bad_config_is_one_line_and_exit_2(args):
    proc = subprocess.run([sys.executable, "-m", "serving", *args], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "error" in lines[0] and "Traceback" not in proc.stderr
    assert proc.stdout == ""
