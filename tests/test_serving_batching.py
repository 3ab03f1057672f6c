"""Batching and precision levers: batched decode at the model level, and real servers.

Model-level tests are fast; the HTTP ones start real server processes on 127.0.0.1:0
with the tiny model and are marked slow.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import torch

from servelab.config import ServerConfig
from serving.launch import launch
from serving.model import build_model

PROMPTS = ["hello", "abc def", "xyz", "world"]  # two of 5 bytes: prefilled in one pass


def greedy_alone(model, prompt: list[int], steps: int) -> list[int]:
    cache, out = model.new_cache(), []
    token = int(model(torch.tensor([prompt]), cache, 0)[0, -1].argmax())
    for pos in range(len(prompt), len(prompt) + steps):
        out.append(token)
        token = int(model(torch.tensor([[token]]), cache, pos)[0, -1].argmax())
    return out


@torch.inference_mode()
def test_batched_decode_gives_the_greedy_tokens_of_each_sequence_alone():
    """Rows of different lengths decode in one forward pass; one row leaves mid-way and
    the last row moves into its slot (as the batch loop does), and nothing changes.
    fp32 only: int8 dynamic quantization scales activations per tensor, i.e. over the
    whole batch, so a row's logits do depend (slightly) on its batch-mates."""
    model = build_model("tiny", max_len=128, seed=3)
    gen = torch.Generator().manual_seed(0)
    prompts = [torch.randint(0, 256, (n,), generator=gen).tolist() for n in (5, 17, 9)]
    steps = [12, 20, 20]
    expected = [greedy_alone(model, p, s) for p, s in zip(prompts, steps)]
    cache = model.new_cache(batch=4)
    rows = []  # [index into prompts, next token, position, tokens so far]
    for i, p in enumerate(prompts):
        token = int(model(torch.tensor([p]), cache.slot(i), 0)[0, -1].argmax())
        rows.append([i, token, len(p), []])
    while rows:
        tokens = torch.tensor([[r[1]] for r in rows])
        logits = model(tokens, cache, torch.tensor([r[2] for r in rows]))[:, -1]
        for r, row_logits in zip(rows, logits):
            r[3].append(r[1])
            r[1], r[2] = int(row_logits.argmax()), r[2] + 1
        done = [k for k, r in enumerate(rows) if len(r[3]) == steps[r[0]]]
        for k in reversed(done):
            assert rows[k][3] == expected[rows[k][0]]
            if k != len(rows) - 1:
                cache.move(len(rows) - 1, k, rows[-1][2])
                rows[k] = rows[-1]
            rows.pop()


@torch.inference_mode()
@pytest.mark.parametrize("precision", ["bf16", "int8"])
def test_bf16_and_int8_models_produce_output(precision):
    model = build_model("tiny", max_len=32, precision=precision)
    assert model.param_count() == build_model("tiny", max_len=32).param_count()
    cache = model.new_cache(batch=2)
    model(torch.zeros(2, 4, dtype=torch.long), cache, 0)
    logits = model(torch.ones(2, 1, dtype=torch.long), cache, torch.tensor([4, 2]))  # batched decode
    assert logits.shape[:2] == (2, 1)
    assert torch.isfinite(logits.float()).all() and logits.float().std() > 0
    if precision == "int8":
        assert "quantized.dynamic" in type(model.lm_head).__module__ and logits.dtype == torch.float32


def test_fp16_on_cpu_is_refused_with_one_clear_line():
    cfg = '{"model": "tiny", "precision": "fp16", "device": "cpu"}'
    proc = subprocess.run([sys.executable, "-m", "serving", "--config-json", cfg],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip() == ("servelab serve: error: precision fp16 needs device cuda; "
                                   "on cpu use bf16 or int8")


def test_bad_batching_mode_is_refused():
    with pytest.raises(ValueError, match="batching"):
        ServerConfig(batching="dynamic")


# --- real servers ---------------------------------------------------------------------

def stream(url: str, body: dict, on_chunk=None) -> tuple[list[str], dict, dict]:
    """Content pieces, the final `servelab` timings and the usage of one streamed request."""
    body = {"stream": True, "ignore_eos": True, "stream_options": {"include_usage": True}, **body}
    pieces, final = [], {}
    with httpx.stream("POST", url + "/v1/completions", json=body, timeout=120) as r:
        assert r.status_code == 200, r.read()
        for line in r.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if chunk["choices"]:
                pieces.append(chunk["choices"][0]["text"])
                if on_chunk:
                    on_chunk(len(pieces))
            if chunk.get("usage"):
                final = chunk
    return pieces, final["servelab"], final["usage"]


def concurrently(url: str, bodies: list[dict]) -> list[tuple]:
    with ThreadPoolExecutor(len(bodies)) as pool:
        return list(pool.map(lambda b: stream(url, b), bodies))


@pytest.fixture(scope="module", params=["static", "continuous"])
def batched(request):
    cfg = ServerConfig(model="tiny", batching=request.param, max_batch_size=4, max_wait_ms=200,
                       max_context=4096, max_tokens_limit=3000, seed=1)
    with launch(cfg, timeout_s=60) as server:
        yield request.param, server.url


@pytest.mark.slow
def test_concurrent_streams_are_complete_and_share_a_batch(batched):
    mode, url = batched
    results = concurrently(url, [{"prompt": p, "max_tokens": 48} for p in PROMPTS])
    for pieces, timings, usage in results:
        assert len(pieces) == usage["completion_tokens"] == timings["output_tokens"] == 48
        assert all(len(p) == 1 for p in pieces) and timings["decode_ms"] > 0
    shared = [t["batch_size"] for _, t, _ in results]
    if mode == "static":  # all four fit one batch: the fill wait let them all in
        assert shared == [4] * 4 and all(t["batch_mean"] == 4 for _, t, _ in results)
    else:  # no fill wait: on a loaded machine the first may run a few steps alone first
        assert sum(b > 1 for b in shared) >= 3, shared
    metrics = httpx.get(url + "/metrics").text
    assert 'servelab_batch_size_bucket{le="4.0"}' in metrics


@pytest.mark.slow
def test_batched_greedy_text_equals_the_text_served_alone(batched):
    """Rows leave at different steps (different max_tokens), so rows move between slots."""
    _, url = batched
    bodies = [{"prompt": p, "max_tokens": n, "temperature": 0} for p, n in zip(PROMPTS, (8, 30, 16, 40))]
    together = concurrently(url, bodies)
    alone = [stream(url, b) for b in bodies]
    assert [t[0] for t in together] == [a[0] for a in alone]
    assert max(t[1]["batch_size"] for t in together) > 1


def long_request_in_background(url: str, max_tokens: int) -> tuple[threading.Thread, dict]:
    """Starts a long stream; returns once it has produced 10 chunks."""
    started, out = threading.Event(), {}

    def run():
        out["result"] = stream(url, {"prompt": "long", "max_tokens": max_tokens},
                               on_chunk=lambda n: n == 10 and started.set())
        out["t_end"] = time.perf_counter()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert started.wait(60)
    return thread, out


@pytest.mark.slow
def test_late_request_joins_or_waits_by_mode(batched):
    mode, url = batched
    thread, long = long_request_in_background(url, 1500 if mode == "continuous" else 300)
    pieces, timings, _ = stream(url, {"prompt": "late", "max_tokens": 8})
    t_short_end = time.perf_counter()
    still_running = thread.is_alive()
    thread.join(120)
    if mode == "continuous":  # joined the running batch at the next step
        assert still_running and timings["queue_ms"] < 250 and timings["batch_size"] == 2
        assert long["result"][1]["batch_size"] == 2
    else:  # static: waits for the running batch to finish, then runs alone
        assert t_short_end > long["t_end"] and timings["batch_size"] == 1
        assert timings["queue_ms"] > 50
    assert len(pieces) == 8


@pytest.mark.slow
def test_int8_continuous_server_streams():
    cfg = ServerConfig(model="tiny", precision="int8", batching="continuous", seed=1)
    with launch(cfg, timeout_s=60) as server:
        results = concurrently(server.url, [{"prompt": p, "max_tokens": 10} for p in PROMPTS[:2]])
    assert all(len(pieces) == usage["completion_tokens"] == 10 for pieces, _, usage in results)


def servelab_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200"}  # wide help: flags are not wrapped
    return subprocess.run([sys.executable, "-m", "servelab.cli", *args], capture_output=True,
                          text=True, timeout=60, env=env)


def test_cli_serve_refuses_fp16_on_cpu_and_both_commands_have_the_batching_flags():
    serve = servelab_cli("serve", "--precision", "fp16", "--port", "0")
    assert serve.returncode == 2 and serve.stderr.strip().splitlines() == [
        "servelab: error: precision fp16 needs device cuda; on cpu use bf16 or int8"]
    for command in ("serve", "run"):
        help_text = servelab_cli(command, "--help").stdout
        assert all(flag in help_text for flag in ("--batching", "--max-batch-size", "--max-wait-ms"))
