"""Trace readers on small fixture files, per-request workloads, caps and shared prefixes."""

import json
from pathlib import Path

import numpy as np
import pytest

from loadtest import prompts, traces, workload
from servelab.config import LoadConfig

FIX = Path(__file__).parent / "fixtures" / "traces"
AZURE, MOONCAKE, BURST = FIX / "azure_conv_head.csv", FIX / "mooncake_small.jsonl", FIX / "burstgpt_small.csv"


def test_azure_reader_maps_columns_and_makes_times_relative():
    tr = traces.read_trace(AZURE)
    assert len(tr) == 20 and tr.hash_ids is None
    assert tr.t_s[0] == 0.0 and tr.t_s[1] == pytest.approx(50.9951690 - 46.6805900)
    assert list(tr.prompt[:4]) == [374, 396, 879, 91] and list(tr.output[:4]) == [44, 109, 55, 16]
    assert np.all(np.diff(tr.t_s) >= 0)


def test_mooncake_reader_ms_timestamps_and_hash_ids():
    tr = traces.read_trace(MOONCAKE)
    assert list(tr.t_s) == [0.0, 0.0, 1.5, 4.0]
    assert list(tr.prompt) == [1100, 700, 1300, 300] and list(tr.output) == [40, 12, 8, 100]
    assert tr.hash_ids == [[0, 1, 2], [0, 3], [0, 1, 4], [5]]


def test_burstgpt_reader_seconds_and_token_columns():
    tr = traces.read_trace(BURST)
    assert list(tr.t_s) == [0.0, 40.0, 113.0, 113.0, 125.0]
    assert list(tr.prompt) == [472, 1087, 417, 2590, 61] and list(tr.output) == [18, 0, 276, 300, 44]


def test_rows_are_sorted_by_time_stably(tmp_path):
    p = tmp_path / "t.jsonl"
    p.write_text("\n".join(json.dumps({"timestamp": t, "input_length": n, "output_length": 1})
                           for t, n in [(2000, 1), (0, 2), (2000, 3)]))
    tr = traces.read_mooncake(p)
    assert list(tr.t_s) == [0.0, 2.0, 2.0] and list(tr.prompt) == [2, 1, 3]


@pytest.mark.parametrize(("text", "name", "message"), [
    ("a,b\n1,2\n", "x.csv", "unknown format"),
    ("TIMESTAMP,ContextTokens,GeneratedTokens\n", "x.csv", "has no requests"),
    ('{"timestamp": 0, "input_length": 3}\n', "x.jsonl", "line 1: need timestamp"),
    ("TIMESTAMP,ContextTokens,GeneratedTokens\nnot a date,1,2\n", "x.csv", "bad TIMESTAMP"),
])
def test_bad_traces_raise_one_line(tmp_path, text, name, message):
    p = tmp_path / name
    p.write_text(text)
    with pytest.raises(traces.TraceError, match=message) as info:
        traces.read_trace(p)
    assert "\n" not in str(info.value)


def test_missing_trace_file():
    with pytest.raises(traces.TraceError, match="no trace file"):
        traces.read_trace("/no/such/trace.csv")


def test_cap_keeps_prompt_plus_output_within_max_context():
    assert workload.cap(100, 50, 2048) == (100, 50, False)
    assert workload.cap(3000, 50, 2048) == (1998, 50, True)
    assert workload.cap(10, 5000, 2048) == (1, 2047, True)
    assert workload.cap(100, 50, 2048, output_cap=32) == (100, 32, True)
    assert workload.cap(100, 0, 2048) == (100, 1, True)  # BurstGPT failures have 0 output tokens


def lengths(load, n=20_000, trace=None, first=0):
    it = workload.lengths_for(load, np.random.default_rng(0), trace, first)
    return [next(it) for _ in range(n)]


@pytest.mark.parametrize("dist", ["uniform", "normal", "lognormal"])
def test_length_distributions_have_the_asked_mean_and_cv(dist):
    ls = lengths(LoadConfig(workload=dist, prompt_tokens=400, max_tokens=100, length_cv=0.3))
    p = np.array([x.prompt for x in ls])
    assert p.mean() == pytest.approx(400, rel=0.02)
    assert p.std() / p.mean() == pytest.approx(0.3, rel=0.05)
    assert np.array([x.output for x in ls]).mean() == pytest.approx(100, rel=0.02)
    assert p.min() >= 1


def test_fixed_workload_is_the_configured_lengths():
    assert set(lengths(LoadConfig(prompt_tokens=7, max_tokens=3), n=5)) == {workload.Lengths(7, 3)}


def test_trace_workload_follows_rows_from_the_first_replayed_one_and_cycles():
    tr = traces.read_trace(BURST)
    ls = lengths(LoadConfig(workload="trace", trace_path=str(BURST), max_context=2048), n=6, trace=tr, first=3)
    assert [(x.prompt, x.output) for x in ls] == [(1748, 300), (61, 44), (472, 18), (1087, 1), (417, 276), (1748, 300)]
    assert [x.capped for x in ls] == [True, False, False, True, False, True]


def test_shared_hash_ids_share_prompt_blocks():
    load = LoadConfig(workload="trace", trace_path=str(MOONCAKE), block_tokens=512)
    tr = traces.read_trace(MOONCAKE)
    f = prompts.BodyFactory(load, True, "w0", tr, 0)
    bodies = [json.loads(f.next_body().data) for _ in range(4)]
    p = [b["prompt"] for b in bodies]
    assert [len(x) for x in p] == [1100, 700, 1300, 300]
    assert p[0][:512] == p[1][:512] == p[2][:512]  # hash id 0
    assert p[0][512:1024] == p[2][512:1024]  # hash id 1
    assert p[0][1024:1100] != p[2][1024:1100]  # 2 vs 4
    assert p[1][512:] != p[0][512:700] and p[3] != p[0][:300]
    other = prompts.BodyFactory(load, True, "w1", tr, 0).next_body()
    assert json.loads(other.data)["prompt"][:512] == p[0][:512]  # same block in every worker


def test_bodies_ask_for_the_trace_output_exactly():
    load = LoadConfig(workload="trace", trace_path=str(AZURE), output_cap=32, ignore_eos=True)
    body = prompts.BodyFactory(load, True, "w0", traces.read_trace(AZURE), 1).next_body()
    sent = json.loads(body.data)
    assert (body.prompt_tokens, body.max_tokens) == (396, 32)
    assert len(sent["prompt"]) == 396 and sent["max_tokens"] == sent["min_tokens"] == 32 and sent["ignore_eos"]


def test_text_prompts_with_shared_blocks_share_words():
    load = LoadConfig(workload="trace", trace_path=str(MOONCAKE), prompt_format="text", block_tokens=4)
    f = prompts.BodyFactory(load, False, "w0", traces.read_trace(MOONCAKE), 0)
    a, b = (json.loads(f.next_body().data)["prompt"].split() for _ in range(2))
    assert a[:4] == b[:4] and len(a) == 1100
