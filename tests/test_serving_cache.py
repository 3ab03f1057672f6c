"""Result levers on a real server: the exact cache, and merging identical in-flight requests."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import httpx
import pytest

from servelab.config import ServerConfig
from serving.launch import launch

pytestmark = pytest.mark.slow

GREEDY = {"max_tokens": 48, "temperature": 0, "ignore_eos": True}


@pytest.fixture(scope="module")
def cache_url():
    with launch(ServerConfig(model="tiny", exact_cache=True, seed=1), timeout_s=60) as server:
        yield server.url


@pytest.fixture(scope="module")
def merge_url():
    cfg = ServerConfig(model="tiny", merge_inflight=True, batching="continuous", seed=1)
    with launch(cfg, timeout_s=60) as server:
        yield server.url


def raw_stream(url: str, body: dict) -> tuple[float, str, dict]:
    """(E2E ms, text, servelab timings) of one streaming request in one write, like the
    load generator sends it (httpx writes head and body apart: Nagle adds ~40 ms)."""
    host, port = url.removeprefix("http://").split(":")
    data = json.dumps({**body, "stream": True}).encode()
    head = (f"POST /v1/completions HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n").encode()
    t0 = time.perf_counter()
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(head + data)
        reply = b"".join(iter(lambda: sock.recv(65536), b""))
    e2e_ms = (time.perf_counter() - t0) * 1e3
    chunks = [json.loads(line[6:]) for line in reply.decode().splitlines()
              if line.startswith("data: {")]
    text = "".join(c["choices"][0]["text"] for c in chunks if c["choices"])
    return e2e_ms, text, next(c["servelab"] for c in chunks if "servelab" in c)


def counters(url: str) -> dict[str, float]:
    wanted = {"servelab_generations_total", 'servelab_cache_requests_total{outcome="merged"}'}
    out = dict.fromkeys(wanted, 0.0)
    for line in httpx.get(url + "/metrics").text.splitlines():
        name, _, value = line.rpartition(" ")
        if name in wanted:
            out[name] = float(value)
    return out


def test_a_repeat_is_an_exact_hit_with_the_same_text_and_no_work(cache_url):
    body = {**GREEDY, "prompt": "an exact cache test"}
    miss_ms, text, first = raw_stream(cache_url, body)
    hit_ms, again, timings = raw_stream(cache_url, body)
    assert first["cache"] == "miss" and timings["cache"] == "exact"
    assert again == text and len(text) > 0
    assert timings["queue_ms"] == timings["prefill_ms"] == timings["decode_ms"] == 0
    assert timings["output_tokens"] == first["output_tokens"] == 48
    assert hit_ms < min(miss_ms, 50)


def test_non_deterministic_requests_are_never_cached(cache_url):
    body = {**GREEDY, "prompt": "sampled", "temperature": 0.9}
    outcomes = [raw_stream(cache_url, body)[2]["cache"] for _ in range(2)]
    assert outcomes == ["bypass", "bypass"]
    seeded = {**body, "seed": 7}
    first, second = raw_stream(cache_url, seeded), raw_stream(cache_url, seeded)
    assert (first[2]["cache"], second[2]["cache"]) == ("miss", "exact")
    assert first[1] == second[1]


async def _stream(client: httpx.AsyncClient, body: dict) -> tuple[list[str], dict]:
    pieces, timings = [], {}
    async with client.stream("POST", "/v1/completions", json={**body, "stream": True}) as r:
        async for line in r.aiter_lines():
            if line.startswith("data: {"):
                chunk = json.loads(line[6:])
                pieces += [c["text"] for c in chunk["choices"]]
                timings = chunk.get("servelab", timings)
    return pieces, timings


def test_identical_concurrent_requests_share_one_generation(merge_url):
    body = {**GREEDY, "prompt": "merge me", "max_tokens": 200}
    before = counters(merge_url)

    async def four():
        async with httpx.AsyncClient(base_url=merge_url, timeout=60) as client:
            return await asyncio.gather(*[_stream(client, body) for _ in range(4)])

    results = asyncio.run(four())
    after = counters(merge_url)
    assert all(pieces == results[0][0] for pieces, _ in results)
    assert len("".join(results[0][0])) > 0
    assert sorted(t["cache"] for _, t in results) == ["merged"] * 3 + ["miss"]
    assert after["servelab_generations_total"] - before["servelab_generations_total"] == 1
    assert after['servelab_cache_requests_total{outcome="merged"}'] - before[
        'servelab_cache_requests_total{outcome="merged"}'] == 3


async def _late_join(url: str, body: dict, leave_early: bool) -> tuple[list[str], dict]:
    """A leader streams a few chunks, a follower joins; the leader then leaves or finishes."""
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        async with client.stream("POST", "/v1/completions", json={**body, "stream": True}) as lead:
            lines = lead.aiter_lines()
            seen = 0
            async for line in lines:
                seen += line.startswith("data: {")
                if seen == 20:
                    break
            follower = asyncio.ensure_future(_stream(client, body))
            await asyncio.sleep(0.05)
            if not leave_early:
                async for _ in lines:
                    pass
        return await follower  # leaving the block closed the leader's connection


@pytest.mark.parametrize("leave_early", [False, True], ids=["leader-stays", "leader-leaves"])
def test_a_late_follower_gets_the_full_stream(merge_url, leave_early):
    body = {**GREEDY, "prompt": f"late joiner {leave_early}", "max_tokens": 300}
    before = counters(merge_url)
    pieces, timings = asyncio.run(_late_join(merge_url, body, leave_early))
    assert counters(merge_url)["servelab_generations_total"] - before["servelab_generations_total"] == 1
    assert timings["cache"] == "merged" and timings["output_tokens"] == 300
    _, reference, alone = raw_stream(merge_url, body)  # nothing in flight now: runs on its own
    assert alone["cache"] == "miss"
    assert "".join(pieces) == reference
