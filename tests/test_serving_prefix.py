"""Prefix reuse (serving/prefix.py): the model's chunked prefill, the block store, and real
servers in every batching mode.

Model-level and store tests are fast; the HTTP ones start real server processes on
127.0.0.1:0 with the tiny model and are marked slow.
"""

from __future__ import annotations

import statistics
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import torch

from servelab.config import ServerConfig
from serving.launch import launch
from serving.model import build_model
from serving.prefix import Prefiller, PrefixStore, block_keys


def ids(n: int, seed: int) -> list[int]:
    """`n` printable-ASCII token ids (what the byte-level tokenizer produces for text)."""
    return torch.randint(32, 127, (n,), generator=torch.Generator().manual_seed(seed)).tolist()


# --- the model and the store ---------------------------------------------------------------

@torch.inference_mode()
def test_a_chunk_after_cached_positions_gives_the_logits_of_a_full_prefill():
    model = build_model("tiny", max_len=256, seed=2)
    prompt = ids(150, 0)
    full = model(torch.tensor([prompt]), model.new_cache(), 0)
    cache = model.new_cache()
    model(torch.tensor([prompt[:64]]), cache, 0)
    chunk = model(torch.tensor([prompt[64:]]), cache, 64)  # T = 86 at start_pos 64
    torch.testing.assert_close(chunk, full[:, 64:], rtol=1e-4, atol=1e-5)


def test_block_keys_are_equal_exactly_as_far_as_the_prefixes_are():
    a = ids(70, 1)
    b = a[:40] + ids(30, 2)
    ka, kb = block_keys(a, 16), block_keys(b, 16)
    assert len(ka) == len(kb) == 4  # full blocks only: 70 // 16
    assert ka[:2] == kb[:2] and ka[2] != kb[2] and ka[3] != kb[3]  # tokens 32..39 shared, 40.. not
    # a block's key names the whole prefix before it, not only its own tokens
    c = ids(16, 3) + a[16:32]
    assert block_keys(c, 16)[1] != ka[1]


@torch.inference_mode()
def test_lookup_reuses_the_longest_stored_prefix_and_always_leaves_a_token_to_compute():
    model = build_model("tiny", max_len=128, seed=2)
    store, cache = PrefixStore(block=16, budget_tokens=1024), model.new_cache()
    prompt = ids(48, 4)
    prefiller = Prefiller(model, store, "cpu")
    assert prefiller.run(cache, 0, [prompt])[0].reused == 0
    assert store.tokens == 48  # all three full blocks stored
    assert store.lookup(prompt).tokens == 32  # the same prompt: its last token is recomputed
    assert store.lookup(prompt + ids(5, 5)).tokens == 48
    assert store.lookup(prompt[:20]).tokens == 16
    assert store.lookup(ids(48, 6)).tokens == 0
    assert (prefiller.lookups, prefiller.hit_tokens, prefiller.computed_tokens) == (1, 0, 48)


def _store_prompt(store: PrefixStore, model, prompt: list[int]) -> int:
    """Prefill one prompt through the store; the number of tokens it reused."""
    return Prefiller(model, store, "cpu").run(model.new_cache(), 0, [prompt])[0].reused


@torch.inference_mode()
def test_eviction_keeps_the_store_within_its_budget_least_recently_used_first():
    model = build_model("tiny", max_len=128, seed=2)
    store = PrefixStore(block=16, budget_tokens=96)  # six blocks
    a, b, c = ids(48, 7), ids(48, 8), ids(48, 9)
    _store_prompt(store, model, a)
    _store_prompt(store, model, b)
    assert store.tokens == 96
    assert store.lookup(a + [65]).tokens == 48  # a is now more recent than b
    _store_prompt(store, model, c)  # three blocks must go: b's, the least recently used
    assert store.tokens == 96
    assert store.lookup(b + [65]).tokens == 0
    assert store.lookup(a + [65]).tokens == 48 and store.lookup(c + [65]).tokens == 48


@torch.inference_mode()
def test_eviction_takes_a_prompts_deepest_blocks_before_its_first_ones():
    model = build_model("tiny", max_len=256, seed=2)
    store = PrefixStore(block=16, budget_tokens=96)
    a, b = ids(64, 10), ids(48, 11)
    _store_prompt(store, model, a)
    _store_prompt(store, model, b)  # 7 blocks for 6 places: a's last block goes, not its first
    assert store.tokens == 96
    assert store.lookup(a + [65]).tokens == 48
    big = ids(200, 12)  # more blocks than the budget: only its first six are kept
    _store_prompt(store, model, big)
    assert store.tokens == 96 and store.lookup(big).tokens == 96


@torch.inference_mode()
@pytest.mark.parametrize("block", [16, 7])
def test_greedy_tokens_with_reuse_equal_those_without(block):
    """Prompts sharing a prefix, prefilled in one batch (misses grouped, hits grouped by
    reused length), then decoded: the same greedy tokens as with no store at all."""
    model = build_model("tiny", max_len=256, seed=3)
    shared = ids(100, 13)
    prompts = [shared + ids(20, 14), shared + ids(20, 15), shared + ids(9, 16), ids(120, 17), shared[:50]]

    def greedy(store: PrefixStore | None) -> list[list[int]]:
        prefiller, cache = Prefiller(model, store, "cpu"), model.new_cache(batch=len(prompts))
        prefiller.run(cache, 0, [prompts[0]])  # the first one stores the shared prefix
        done = prefiller.run(cache, 0, prompts)
        out = [[] for _ in prompts]
        for row, filled in enumerate(done):
            token, pos = int(filled.logits.argmax()), len(prompts[filled.index])
            for _ in range(12):
                out[filled.index].append(token)
                token = int(model(torch.tensor([[token]]), cache.slot(row), pos)[0, -1].argmax())
                pos += 1
        return out

    store = PrefixStore(block, 4096)
    assert greedy(store) == greedy(None)
    reused = Prefiller(model, store, "cpu").run(model.new_cache(), 0, [shared + ids(3, 18)])[0].reused
    assert reused == 100 // block * block


# --- real servers ------------------------------------------------------------------------

GREEDY = {"max_tokens": 24, "temperature": 0, "ignore_eos": True}


def complete(url: str, prompt: list[int], **extra) -> tuple[str, dict]:
    """Text and `servelab` timings of one non-streaming completion (its headers agree)."""
    r = httpx.post(url + "/v1/completions", json={**GREEDY, "prompt": prompt, **extra}, timeout=120)
    assert r.status_code == 200, r.text
    body = r.json()
    timings = body["servelab"]
    if "prefix_tokens" in timings:
        assert r.headers["x-servelab-prefix-tokens"] == str(timings["prefix_tokens"])
    return body["choices"][0]["text"], timings


def stream_text(url: str, prompt: list[int]) -> tuple[str, dict]:
    """Text and final `servelab` timings of one streamed completion."""
    import json

    body = {**GREEDY, "prompt": prompt, "stream": True}
    text, timings = "", {}
    with httpx.stream("POST", url + "/v1/completions", json=body, timeout=120) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if line.startswith("data: {"):
                chunk = json.loads(line[6:])
                text += "".join(c["text"] for c in chunk["choices"])
                timings = chunk.get("servelab", timings)
    return text, timings


def counters(url: str) -> dict[str, float]:
    names = ("servelab_prefix_lookups_total", "servelab_prefix_hit_tokens_total",
             "servelab_prefill_computed_tokens_total")
    out = dict.fromkeys(names, 0.0)
    for line in httpx.get(url + "/metrics").text.splitlines():
        name, _, value = line.rpartition(" ")
        if name in out:
            out[name] = float(value)
    return out


@pytest.fixture(scope="module")
def reference_url():
    """The same model with prefix reuse off: the texts every mode must reproduce."""
    with launch(ServerConfig(model="tiny", seed=1), timeout_s=60) as server:
        yield server.url


@pytest.fixture(scope="module", params=["none", "static", "continuous"])
def reuse(request):
    cfg = ServerConfig(model="tiny", seed=1, batching=request.param, max_batch_size=8, max_wait_ms=100,
                       prefix_cache=True, prefix_block=16, exact_cache=True)
    with launch(cfg, timeout_s=60) as server:
        yield request.param, server.url


SHARED = ids(200, 20)  # 12 full blocks of 16: 192 tokens reusable


@pytest.mark.slow
def test_greedy_text_with_prefix_reuse_equals_the_text_without(reuse, reference_url):
    mode, url = reuse
    salt = {"none": 30, "static": 40, "continuous": 50}[mode]  # fresh prompts per server
    first = SHARED + ids(20, salt)
    prompts = [SHARED + ids(20, salt + 1), SHARED + ids(20, salt + 2), SHARED + ids(37, salt + 3),
               ids(220, salt + 4), SHARED[:100] + ids(120, salt + 5)]
    text, timings = stream_text(url, first)
    assert timings["cache"] == "miss" and timings["prefix_tokens"] == 0
    with ThreadPoolExecutor(len(prompts)) as pool:  # joins one batch (static) or a few steps
        served = list(pool.map(lambda p: stream_text(url, p), prompts))
    expected = [stream_text(reference_url, p)[0] for p in [first, *prompts]]
    assert [text] + [t for t, _ in served] == expected and all(len(t) == 24 for t in expected)
    reused = [t["prefix_tokens"] for _, t in served]
    assert reused == [192, 192, 192, 0, 96]
    assert [t["cache"] for _, t in served] == ["prefix"] * 3 + ["miss", "prefix"]
    if mode == "static":
        assert max(t["batch_size"] for _, t in served) > 1


@pytest.mark.slow
def test_reuse_is_counted_and_other_outcomes_keep_their_names(reuse):
    mode, url = reuse
    salt = {"none": 60, "static": 70, "continuous": 80}[mode]
    prompt = SHARED + ids(30, salt)
    complete(url, SHARED + ids(30, salt + 2))  # stores the shared prefix, if no test did yet
    before = counters(url)
    text, timings = complete(url, prompt)
    after = counters(url)
    assert timings["prefix_tokens"] == 192 and timings["cache"] == "prefix"
    assert after["servelab_prefix_lookups_total"] - before["servelab_prefix_lookups_total"] == 1
    assert after["servelab_prefix_hit_tokens_total"] - before["servelab_prefix_hit_tokens_total"] == 192
    assert after["servelab_prefill_computed_tokens_total"] - before["servelab_prefill_computed_tokens_total"] == 38
    again, timings = complete(url, prompt)  # the exact cache answers a repeat, as before
    assert again == text and timings["cache"] == "exact" and "prefix_tokens" not in timings
    _, timings = complete(url, SHARED + ids(30, salt + 1), temperature=0.9)  # not deterministic
    assert timings["cache"] == "bypass" and timings["prefix_tokens"] == 192


@pytest.mark.slow
def test_a_long_shared_prefix_makes_prefill_faster():
    """1,500-token prompts sharing 1,488 tokens: a hit computes 12 + up to 15 of them."""
    cfg = ServerConfig(model="tiny", seed=1, prefix_cache=True, prefix_cache_tokens=16384)
    with launch(cfg, timeout_s=60) as server:
        misses = [complete(server.url, ids(1500, 90 + i), max_tokens=2) for i in range(3)]
        long_prefix = ids(1488, 93)
        hits = [complete(server.url, long_prefix + ids(12, 94 + i), max_tokens=2) for i in range(4)][1:]
    assert all(t["prefix_tokens"] == 0 for _, t in misses)
    assert all(t["prefix_tokens"] == 1488 for _, t in hits)
    miss_ms = statistics.median(t["prefill_ms"] for _, t in misses)
    hit_ms = statistics.median(t["prefill_ms"] for _, t in hits)
    assert hit_ms < miss_ms / 2, (hit_ms, miss_ms)  # ~30x less compute: a generous bound


@pytest.mark.slow
def test_without_the_lever_timings_carry_no_prefix_field(reference_url):
    before = counters(reference_url)
    _, timings = complete(reference_url, SHARED + ids(5, 99))
    after = counters(reference_url)
    assert "prefix_tokens" not in timings and timings["cache"] == "miss"
    assert after["servelab_prefix_lookups_total"] == before["servelab_prefix_lookups_total"] == 0
    assert after["servelab_prefill_computed_tokens_total"] - before["servelab_prefill_computed_tokens_total"] == 205


def test_a_budget_below_one_block_is_refused():
    with pytest.raises(ValueError, match="at least one block"):
        ServerConfig(prefix_cache=True, prefix_block=32, prefix_cache_tokens=16)


def servelab_cli(*args: str):
    import os
    import subprocess
    import sys

    env = {**os.environ, "COLUMNS": "200"}  # wide help: flags are not wrapped
    return subprocess.run([sys.executable, "-m", "servelab.cli", *args], capture_output=True,
                          text=True, timeout=60, env=env)


def test_cli_has_the_prefix_flags_and_refuses_bad_ones_in_one_line(tmp_path):
    for command in ("serve", "run"):
        help_text = servelab_cli(command, "--help").stdout
        assert all(f in help_text for f in ("--prefix-cache", "--prefix-block", "--prefix-cache-tokens"))
    assert "--prefix-groups" in help_text and "--prefix-tokens" in help_text  # run: the workload
    serve = servelab_cli("serve", "--port", "0", "--prefix-cache", "--prefix-block", "64",
                         "--prefix-cache-tokens", "32")
    assert serve.returncode == 2 and serve.stderr.strip().splitlines() == [
        "servelab: error: prefix_cache_tokens (32) must hold at least one block of prefix_block (64) tokens"]
    store = tmp_path / "s.duckdb"
    run = servelab_cli("run", "--prefix-groups", "4", "--prefix-tokens", "128", "--prompt-tokens", "128",
                       "--duration", "2", "--store", str(store))
    assert run.returncode == 2 and len(run.stderr.strip().splitlines()) == 1
    assert "prefix_tokens (128) must be less than prompt_tokens (128)" in run.stderr
    assert not store.exists()
