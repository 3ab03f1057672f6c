"""servelab/fidelity.py against real built-in servers: fp32 twice (same answers) and fp32 vs int8."""

from __future__ import annotations

import pytest

from analysis.fidelity import compare_outputs
from servelab.config import ServerConfig
from servelab.errors import UserError
from servelab.fidelity import PROMPTS, load_prompts, probe, report
from servelab.targets import builtin_server

pytestmark = pytest.mark.slow
N = 8  # of the shipped prompts: enough to see answers change, quick on 2 cores


def test_shipped_prompt_set():
    prompts = load_prompts()
    assert len(prompts) >= 30 and len({p["id"] for p in prompts}) == len(prompts)
    assert PROMPTS.name == "fidelity.jsonl"


def test_same_setup_gives_the_same_greedy_answers_and_int8_is_compared():
    prompts = load_prompts()[:N]
    fp32 = ServerConfig(model="tiny", precision="fp32")
    with builtin_server(fp32) as a:
        base = probe(a.url, prompts, max_tokens=12)
    with builtin_server(fp32) as b:
        again = probe(b.url, prompts, max_tokens=12)
    with builtin_server(fp32.model_copy(update={"precision": "int8"})) as c:
        int8 = probe(c.url, prompts, max_tokens=12)
    assert base["model"] == "tiny" and base["token_unit"] == "characters"
    assert all(len(o["tokens"]) == 12 for o in base["outputs"])      # 12 greedy tokens, one character each
    same = report(base, again)
    assert same["exact_match_rate"] == 1.0 and same["token_agreement"] == 1.0 and same["changed_prompts"] == []
    r = report(base, int8)
    direct = compare_outputs([o["tokens"] for o in base["outputs"]], [o["tokens"] for o in int8["outputs"]])
    assert {k: r[k] for k in direct} == direct
    assert r["prompts"] == N and 0.0 <= r["exact_match_rate"] <= 1.0
    assert len(r["changed_prompts"]) == round(N * (1 - r["exact_match_rate"]))


def test_unreachable_server_and_bad_prompt_file(tmp_path):
    bad = tmp_path / "p.jsonl"
    bad.write_text('{"no_prompt": 1}\n')
    with pytest.raises(UserError, match="prompt"):
        load_prompts(bad)
    with pytest.raises(UserError, match="did not answer"):
        probe("http://127.0.0.1:9", [{"id": "1", "prompt": "hi"}], timeout_s=2)
