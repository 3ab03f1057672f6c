"""Prompts and request bodies."""

import json

import numpy as np

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
    load = LoadConfig(max_tokens=32, model="m1")
    body = prompts.request_body(load, [65, 66])
    assert body == {
        "model": "m1", "prompt": [65, 66], "max_tokens": 32, "temperature": 0, "stream": True,
        "stream_options": {"include_usage": True}, "ignore_eos": True, "min_tokens": 32,
    }  # fmt: skip


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
    factory = prompts.BodyFactory(LoadConfig(prompt_tokens=100, max_tokens=64), True, "w0")
    data, count = factory.next(max_tokens=8)
    body = json.loads(data)
    assert len(body["prompt"]) == 100 and count == 100
    assert body["max_tokens"] == 8 and body["min_tokens"] == 8
    assert factory.path == "/v1/completions"


def test_word_list_has_no_duplicates_so_draws_are_uniform():
    assert len(set(prompts.WORDS)) == len(prompts.WORDS)
