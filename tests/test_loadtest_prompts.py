"""Prompts and request bodies."""

import json

import numpy as np
import pytest

from loadtest import prompts
from servelab.config import LoadConfig


def test_token_id_prompt_has_exactly_n_printable_ascii_ids():
    ids = prompts.token_id_prompt(300, np.random.default_rng(1))
    assert len(ids) == 300
    assert all(32 <= i <= 126 for i in ids)


def test_text_prompt_has_n_words_from_the_vocabulary():
    text = prompts.text_prompt(50, np.random.default_rng(1))
    words = text.split(" ")
    assert len(words) == 50
    assert set(words) <= set(prompts.WORDS)


def test_auto_format_is_token_ids_only_for_the_builtin_server():
    assert prompts.resolve_format("auto", builtin=True) == "token_ids"
    assert prompts.resolve_format("auto", builtin=False) == "text"
    assert prompts.resolve_format("text", builtin=True) == "text"


def test_completions_body_streams_with_usage_and_ignore_eos():
    load = LoadConfig(max_tokens=32, served_model="m1", ignore_eos=True)
    body = prompts.request_body(load, [65, 66])
    assert body == {
        "model": "m1", "prompt": [65, 66], "max_tokens": 32, "temperature": 0, "stream": True,
        "stream_options": {"include_usage": True}, "ignore_eos": True, "min_tokens": 32,
    }  # fmt: skip


def test_body_has_only_standard_fields_by_default_and_extra_body_wins():
    body = prompts.request_body(LoadConfig(max_tokens=8), "hi")
    assert set(body) == {"prompt", "max_tokens", "temperature", "stream", "stream_options"}
    load = LoadConfig(max_tokens=8, extra_body={"top_k": 1, "temperature": 0.5}, model="old-name")
    body = prompts.request_body(load, "hi")
    assert (body["top_k"], body["temperature"], body["model"]) == (1, 0.5, "old-name")


def test_chat_body_sends_token_ids_as_the_same_ascii_text_and_omits_unset_fields():
    load = LoadConfig(endpoint="chat", ignore_eos=False)
    body = prompts.request_body(load, [104, 105])
    assert body["messages"] == [{"role": "user", "content": "hi"}]
    assert "model" not in body and "ignore_eos" not in body and "min_tokens" not in body


def test_body_factory_is_reproducible_per_producer_and_varies_per_request():
    load = LoadConfig(prompt_tokens=64, seed=3)
    a, b = prompts.BodyFactory(load, True, "w0"), prompts.BodyFactory(load, True, "w0")
    first, second = a.next(), a.next()
    assert first == b.next()
    assert first[0] != second[0]  # a fresh prompt each time: no accidental cache hits
    assert prompts.BodyFactory(load, True, "w1").next() != first


def test_body_factory_exact_prompt_length_and_max_tokens_override():
    factory = prompts.BodyFactory(LoadConfig(prompt_tokens=100, max_tokens=64, ignore_eos=True), True, "w0")
    data, count = factory.next(max_tokens=8)
    body = json.loads(data)
    assert len(body["prompt"]) == 100 and count == 100
    assert body["max_tokens"] == 8 and body["min_tokens"] == 8
    assert factory.path == "/v1/completions"


def test_word_list_has_no_duplicates_so_draws_are_uniform():
    assert len(set(prompts.WORDS)) == len(prompts.WORDS)


def _prompts(load: LoadConfig, producer: str, n: int) -> list:
    factory = prompts.BodyFactory(load, True, producer)
    return [json.loads(factory.next_body().data)["prompt"] for _ in range(n)]


def test_shared_prefix_groups_start_every_prompt_with_one_of_g_prefixes():
    load = LoadConfig(prompt_tokens=100, prefix_groups=3, prefix_tokens=80, seed=5)
    drawn = _prompts(load, "w0", 60) + _prompts(load, "w1", 20)  # workers share the prefixes
    assert all(len(p) == 100 for p in drawn)
    heads = {tuple(p[:80]) for p in drawn}
    assert len(heads) == 3  # each group appears in 80 uniform draws of 3
    assert len({tuple(p[80:]) for p in drawn}) == len(drawn)  # every suffix fresh
    assert heads == {tuple(prompts.group_prefix(g, 80, "token_ids", 5)) for g in range(3)}


def test_shared_prefix_leaves_a_fresh_token_in_prompts_shorter_than_it():
    load = LoadConfig(prompt_tokens=100, prefix_groups=1, prefix_tokens=80, workload="uniform", length_cv=0.5)
    head = prompts.group_prefix(0, 80, "token_ids", 0)
    for p in _prompts(load, "w0", 200):
        shared = min(80, len(p) - 1)
        assert p[:shared] == head[:shared]


def test_shared_prefix_text_prompts_share_their_first_words():
    load = LoadConfig(prompt_tokens=40, prefix_groups=1, prefix_tokens=30, prompt_format="text")
    factory = prompts.BodyFactory(load, False, "w0")
    texts = [json.loads(factory.next_body().data)["prompt"].split(" ") for _ in range(5)]
    assert all(len(t) == 40 and t[:30] == texts[0][:30] for t in texts)
    assert len({tuple(t[30:]) for t in texts}) == 5


@pytest.mark.parametrize("fields, message", [
    ({"prefix_groups": 2}, "need both"),
    ({"prefix_tokens": 64}, "need both"),
    ({"prefix_groups": 2, "prefix_tokens": 128}, "must be less than prompt_tokens"),
    ({"prefix_groups": 2, "prefix_tokens": 64, "workload": "trace", "trace_path": "x.csv"}, "brings its own"),
])
def test_inconsistent_shared_prefix_settings_are_refused(fields, message):
    with pytest.raises(ValueError, match=message):
        LoadConfig(prompt_tokens=128, **fields)
