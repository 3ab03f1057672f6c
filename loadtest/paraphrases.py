"""Question traffic in which some prompts mean the same as earlier ones (`paraphrase_rate`).

The question set, data/paraphrases/paraphrases.jsonl (its README says how it was made):
one group per line, a base question, 2-3 paraphrases of it (same meaning, other words)
and hard negatives (nearly the same words, another meaning: "reverse a list" vs "sort a
list"). Each base and each negative is a distinct meaning.

`QuestionStream` with rate p: each question is, with probability p, a paraphrase not sent
before of a base sent before (uniform over the groups that still have one; when none has,
a fresh question instead), else a fresh question: the next of a shuffled pool of every
base and every negative, started again, reshuffled, once used up (from then on fresh
questions repeat earlier ones exactly). `meaning` says which answers are right for it:
a semantic cache should answer a paraphrase with its base's answer, and a negative with
nothing it has stored. Seeded; pure apart from `load_groups` reading the file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from servelab.datafiles import data_path

DEFAULT_PATH = data_path("paraphrases", "paraphrases.jsonl")  # the checkout's or the installed copy


@dataclass(frozen=True)
class Group:
    id: str
    topic: str
    base: str
    paraphrases: tuple[str, ...]
    negatives: tuple[str, ...]


@dataclass(frozen=True)
class Question:
    text: str
    meaning: str  # the group id for its base and paraphrases; "<group id>-n<k>" for a negative
    kind: str  # "base", "paraphrase" or "negative"


def load_groups(path: str | Path | None = None) -> list[Group]:
    """The groups of a paraphrase set (default: the bundled one)."""
    groups = []
    with open(path or DEFAULT_PATH, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                g = json.loads(line)
                groups.append(Group(g["id"], g["topic"], g["base"], tuple(g["paraphrases"]), tuple(g["negatives"])))
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"{path or DEFAULT_PATH}:{n}: not a paraphrase group ({exc})") from None
    if not groups:
        raise ValueError(f"{path or DEFAULT_PATH}: no paraphrase groups")
    return groups


def fresh_pool(groups: list[Group]) -> list[Question]:
    """Every distinct meaning once: each base, each negative."""
    pool = [Question(g.base, g.id, "base") for g in groups]
    pool += [Question(text, f"{g.id}-n{k}", "negative") for g in groups for k, text in enumerate(g.negatives)]
    return pool


class QuestionStream:
    """An endless seeded sequence of questions, `rate` of them paraphrases (module docstring)."""

    def __init__(self, groups: list[Group], rate: float, rng: np.random.Generator):
        self.groups = {g.id: g for g in groups}
        self.rate = rate
        self.rng = rng
        self._pool = fresh_pool(groups)
        self._order: list[int] = []
        self._unsent: dict[str, list[str]] = {}  # group id -> its paraphrases not sent yet, of sent bases
        self.paraphrases = 0  # questions that were paraphrases

    def next(self) -> Question:
        open_groups = [gid for gid, left in self._unsent.items() if left]
        if open_groups and self.rng.random() < self.rate:
            gid = open_groups[self.rng.integers(len(open_groups))]
            left = self._unsent[gid]
            self.paraphrases += 1
            return Question(left.pop(self.rng.integers(len(left))), gid, "paraphrase")
        return self._fresh()

    def _fresh(self) -> Question:
        if not self._order:
            self._order = self.rng.permutation(len(self._pool)).tolist()
        q = self._pool[self._order.pop()]
        if q.kind == "base" and q.meaning not in self._unsent:
            self._unsent[q.meaning] = list(self.groups[q.meaning].paraphrases)
        return q
