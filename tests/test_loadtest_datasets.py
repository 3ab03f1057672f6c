"""JSONL prompt datasets: the ShareGPT and prompt-row shapes, token counts, and a real run."""

import json
from pathlib import Path

import numpy as np
import pytest

from loadtest import datasets, prompts, workload
from servelab.config import LoadConfig

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "datasets" / "sample_sharegpt.jsonl"


def write(tmp_path, rows) -> Path:
    p = tmp_path / "d.jsonl"
    p.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return p


def test_sharegpt_first_user_turn_and_the_reply_after_it(tmp_path):
    p = write(tmp_path, [
        {"conversations": [{"from": "system", "value": "be brief"}, {"from": "human", "value": "Q1"},
                           {"from": "gpt", "value": "A one"}, {"from": "human", "value": "Q2"}]},
        {"messages": [{"role": "user", "content": "Hi there"}, {"role": "assistant", "content": "Hello"}]},
        {"conversations": [{"from": "gpt", "value": "no user turn"}]},
        {"prompt": "Plain row", "output_tokens": 7},
        {"prompt": "With completion", "completion": "abc"},
        {"prompt": ""},
        "",
    ])
    ds = datasets.read_dataset(p)
    assert [r.prompt for r in ds.rows] == ["Q1", "Hi there", "Plain row", "With completion"]
    assert [r.reply for r in ds.rows] == ["A one", "Hello", None, "abc"]
    assert ds.rows[2].output_tokens == 7
    assert ds.skipped == 2


@pytest.mark.parametrize("rows, message", [
    (["{not json"], "line 1 is not JSON"),
    ([{"conversations": []}, {"prompt": "  "}], "no usable prompts (2 rows"),
])
def test_bad_datasets_are_one_line_errors(tmp_path, rows, message):
    with pytest.raises(datasets.DatasetError, match="dataset .*d.jsonl") as info:
        datasets.read_dataset(write(tmp_path, rows))
    assert message in str(info.value) and "\n" not in str(info.value)


def test_token_counts_exact_bytes_or_documented_estimate():
    assert datasets.count_tokens("héllo", exact_bytes=True) == 6  # UTF-8 bytes
    assert datasets.count_tokens("abcdefghi", exact_bytes=False) == 3  # ceil(9 / 4)
    assert datasets.count_tokens("", exact_bytes=False) == 1


def test_dataset_workload_sends_the_texts_with_reply_lengths_and_skips_what_cannot_fit(tmp_path):
    p = write(tmp_path, [{"prompt": "x" * 40, "completion": "y" * 10},
                         {"prompt": "short", "output_tokens": 500},
                         {"prompt": "z" * 200, "output_tokens": 5}])  # 200 bytes >= max_context
    load = LoadConfig(workload="dataset", dataset_path=str(p), max_context=100, max_tokens=9)
    factory = prompts.BodyFactory(load, builtin=True, producer="w0", trace=datasets.read_dataset(p))
    seen = {}
    for _ in range(20):
        body = factory.next_body()
        obj = json.loads(body.data)
        seen[obj["prompt"]] = (body.prompt_tokens, body.max_tokens, obj["max_tokens"])
    assert set(seen) == {"x" * 40, "short"}  # the 200-byte prompt never fits
    assert seen["x" * 40] == (40, 10, 10)
    assert seen["short"] == (5, 99, 99)  # output capped to max_context - 1... then prompt fits
    # a seeded order: the same producer draws the same sequence again
    a = prompts.BodyFactory(load, True, "w0", datasets.read_dataset(p))
    b = prompts.BodyFactory(load, True, "w0", datasets.read_dataset(p))
    assert [a.next_body().data for _ in range(6)] == [b.next_body().data for _ in range(6)]


def test_every_row_is_sent_once_per_pass():
    ds = datasets.read_dataset(SAMPLE)
    load = LoadConfig(workload="dataset", dataset_path=str(SAMPLE))
    rows = workload.lengths_for(load, np.random.default_rng(0), ds, exact_bytes=True)
    first_pass = [next(rows).text for _ in range(len(ds))]
    assert sorted(first_pass) == sorted(r.prompt for r in ds.rows)


def test_run_with_a_missing_or_bad_dataset_is_one_line(cli, tmp_path):
    res = cli("run", "--target", "builtin", "--dataset", str(tmp_path / "nope.jsonl"), "--duration", "1",
              "--store", str(tmp_path / "s.duckdb"))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.strip().startswith("servelab: error: cannot read dataset")
    assert len(res.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_a_run_sends_the_sample_dataset_and_the_store_has_exact_counts(cli, tmp_path):
    store = str(tmp_path / "s.duckdb")
    res = cli("run", "--target", "builtin", "--calibration", "--calib-ttft-ms", "5", "--calib-itl-ms", "1",
              "--dataset", str(SAMPLE), "--rate", "8", "--arrival", "constant", "--duration", "3",
              "--warmup", "0", "--output-cap", "64", "--store", store, "--json")
    assert res.returncode == 0, res.stderr
    run_id = json.loads(res.stdout.strip().splitlines()[-1])["run_id"]
    from store import queries

    reqs = queries.get_requests(store, run_id)
    ok = reqs[reqs.status == "ok"]
    assert len(ok) >= 15
    sizes = {len(r.prompt.encode()) for r in datasets.read_dataset(SAMPLE).rows}
    assert set(ok.prompt_tokens_client.astype(int)) <= sizes  # the client's count is the byte count
    assert (ok.prompt_tokens == ok.prompt_tokens_client).all()  # ... and the server's usage agrees
    assert (ok.max_tokens <= 64).all() and ok.max_tokens.nunique() > 1
