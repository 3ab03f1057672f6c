"""The paraphrase set and `LoadConfig.paraphrase_rate`: what is sent, and how often."""

import json
from collections import Counter

import numpy as np
import pytest

from loadtest import paraphrases, prompts
from servelab.config import LoadConfig


@pytest.fixture(scope="module")
def groups():
    return paraphrases.load_groups()


def test_the_set_has_enough_varied_groups_each_with_paraphrases_and_negatives(groups):
    assert len(groups) >= 120
    assert len({g.id for g in groups}) == len(groups)
    assert all(2 <= len(g.paraphrases) <= 3 and g.negatives for g in groups)
    topics = Counter(g.topic for g in groups)
    assert len(topics) >= 8 and max(topics.values()) < len(groups) / 3
    texts = [t for g in groups for t in (g.base, *g.paraphrases, *g.negatives)]
    assert len(set(texts)) == len(texts)  # no question twice, so every meaning is one text's


def test_paraphrases_come_at_the_rate_and_only_of_bases_sent_before(groups):
    stream = paraphrases.QuestionStream(groups, 0.3, np.random.default_rng(0))
    sent = [stream.next() for _ in range(300)]
    bases_sent: set[str] = set()
    for q in sent:
        if q.kind == "paraphrase":
            assert q.meaning in bases_sent
        elif q.kind == "base":
            bases_sent.add(q.meaning)
    n = sum(q.kind == "paraphrase" for q in sent)
    assert n == stream.paraphrases and abs(n / len(sent) - 0.3) < 0.07
    para_texts = [q.text for q in sent if q.kind == "paraphrase"]
    assert len(set(para_texts)) == len(para_texts)  # each paraphrase at most once
    fresh = [q for q in sent if q.kind != "paraphrase"]
    assert len({q.text for q in fresh}) == len(fresh)  # the pool is not used up in 300
    assert any(q.kind == "negative" for q in fresh)


def test_no_paraphrases_at_rate_zero_and_the_same_seed_the_same_questions(groups):
    a = paraphrases.QuestionStream(groups, 0.0, np.random.default_rng(1))
    assert all(a.next().kind != "paraphrase" for _ in range(100))
    b, c = (paraphrases.QuestionStream(groups, 0.5, np.random.default_rng(2)) for _ in range(2))
    assert [b.next() for _ in range(50)] == [c.next() for _ in range(50)]


def test_bodies_carry_the_questions_as_greedy_text_prompts(groups):
    load = LoadConfig(paraphrase_rate=0.4, max_tokens=8)
    factory = prompts.BodyFactory(load, True, "w0")
    known = {t for g in groups for t in (g.base, *g.paraphrases, *g.negatives)}
    for _ in range(40):
        body = factory.next_body()
        data = json.loads(body.data)
        assert data["prompt"] in known and data["temperature"] == 0 and data["max_tokens"] == 8
        assert body.prompt_tokens == len(data["prompt"].encode())  # byte-level: exact
    assert factory.questions.paraphrases > 0
    chat = prompts.BodyFactory(load.model_copy(update={"endpoint": "chat"}), False, "w0")
    assert json.loads(chat.next_body().data)["messages"][0]["content"] in known


def test_without_the_rate_prompts_stay_synthetic():
    factory = prompts.BodyFactory(LoadConfig(prompt_tokens=16, max_tokens=4), True, "w0")
    assert factory.questions is None
    assert len(json.loads(factory.next_body().data)["prompt"]) == 16


def test_a_broken_set_names_its_line(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"id": "g1", "topic": "x", "base": "b", "paraphrases": ["p"], "negatives": []}\n{"id": 2}\n')
    with pytest.raises(ValueError, match=r"p.jsonl:2: not a paraphrase group"):
        paraphrases.load_groups(path)


def test_questions_and_a_dataset_s_prompts_do_not_mix():
    with pytest.raises(ValueError, match="paraphrase_rate sends the paraphrase set's questions"):
        LoadConfig(paraphrase_rate=0.3, workload="dataset", dataset_path="prompts.jsonl")
