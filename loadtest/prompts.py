"""Prompts and request bodies: what each request asks the target for.

Two prompt formats:

- `token_ids`: a list of ints, printable ASCII byte values 32..126. The built-in server's
  tokenizer is byte-level, so it sees exactly `prompt_tokens` tokens.
- `text`: space-separated common English words. Every word in `WORDS` is short, lowercase
  and among the most frequent in English, so GPT-2, cl100k/o200k (OpenAI) and Llama/Mistral
  BPE vocabularies each hold it, with its leading space, as one token: N words is about N
  tokens (within a few percent; the target's `usage.prompt_tokens` is the exact count).

Each request draws a fresh prompt from one seeded RNG per producer, so prompts differ
(no accidental cache hits on the target) yet a run is reproducible, except for shared
prefix blocks (trace `hash_ids`), which are the same wherever the same block id appears.
Per-request lengths come from `loadtest.workload`.

Shared prefixes (`LoadConfig.prefix_groups` = G, `prefix_tokens` = P): G fixed prefixes
of P tokens (system prompts, few-shot examples), each the same for every worker of a run
(seeded by (seed, group)); every request starts with one of them, picked uniformly by the
producer's RNG, and ends with fresh tokens up to its length n. A request shorter than the
prefix keeps n - 1 of its tokens and one fresh one: every prompt ends with fresh tokens,
so it exercises a target's prefix cache, not its result cache.

Repeats (`LoadConfig.repeat_rate` = r): each request, with probability r, resends one of
this producer's last `REPEAT_WINDOW` (32) distinct fresh bodies, chosen uniformly, instead
of a fresh prompt: deliberate exact repeats, for a target's result cache. Bodies always
ask for temperature 0 (greedy), so a repeat is a deterministic, cacheable request. The
repeat draws use their own RNG, so the fresh prompts of a run do not depend on r.

Paraphrases (`LoadConfig.paraphrase_rate` = p > 0): prompts are text questions from the
paraphrase set instead (`loadtest.paraphrases`; a token-id format is ignored), p of them
paraphrasing a question this producer sent earlier: traffic for a semantic cache. The
output lengths still come from the workload; the prompt is as long as its question.
Pure: no I/O, except reading the paraphrase set once.
"""

from __future__ import annotations

import itertools
import json
import zlib
from collections import deque
from collections.abc import Iterator
from typing import NamedTuple

import numpy as np

from loadtest.workload import Lengths, lengths_for
from servelab.config import LoadConfig

PRINTABLE = (32, 127)  # byte values [32, 127): printable ASCII

WORDS = (
    "the of and to in is that for it as was with be by on not he this are or his from at "
    "which but have an had they you were their one all we can her has there been if more "
    "when will would who so no time people year way day man thing world life hand part "
    "place case week work point number group problem fact good new first last long great "
    "little own other old right big high small large next early young few public bad same "
    "able make know take see come think look want give use find tell ask seem feel "
    "try leave call city water house room book word story money night home line end game "
    "name state school family car light music food power rate level form order sound test"
).split()

REPEAT_WINDOW = 32  # repeats pick uniformly among this many most recent fresh bodies

PATHS = {"completions": "/v1/completions", "chat": "/v1/chat/completions"}
JOBS_PATH = "/v1/jobs"


def resolve_format(prompt_format: str, builtin: bool) -> str:
    """`auto` means token ids for the built-in server (exact counts), text elsewhere."""
    if prompt_format == "auto":
        return "token_ids" if builtin else "text"
    return prompt_format


def token_id_prompt(n: int, rng: np.random.Generator) -> list[int]:
    """Exactly `n` printable-ASCII byte values."""
    return rng.integers(*PRINTABLE, size=n).tolist()


def text_prompt(n: int, rng: np.random.Generator) -> str:
    """About `n` BPE tokens: `n` common words (see the module docstring for the estimate)."""
    return " ".join([WORDS[i] for i in rng.integers(0, len(WORDS), size=n).tolist()])


def request_body(load: LoadConfig, prompt: str | list[int]) -> dict:
    """The OpenAI-compatible body for `load.endpoint` around `prompt`: streaming unless
    `load.api` is nonstream or job; a job wraps it as {"endpoint", "body"} (serving/jobs.py).

    Chat messages carry text only, so a token-id prompt is sent as the same bytes decoded
    as ASCII: still exact for a byte-level tokenizer (the chat template is the server's).
    """
    body: dict = {}
    if load.model:
        body["model"] = load.model
    if load.endpoint == "chat":
        content = bytes(prompt).decode("ascii") if isinstance(prompt, list) else prompt
        body["messages"] = [{"role": "user", "content": content}]
    else:
        body["prompt"] = prompt
    body.update(max_tokens=load.max_tokens, temperature=0)
    if load.api == "stream":
        body.update(stream=True, stream_options={"include_usage": True})
    if load.ignore_eos:
        # vLLM's extensions: generate exactly max_tokens so every request has the same length.
        body.update(ignore_eos=True, min_tokens=load.max_tokens)
    if load.api == "job":
        return {"endpoint": load.endpoint, "body": body}
    return body


def block_tokens(block_id: int, n: int, fmt: str, seed: int) -> list[int] | list[str]:
    """The `n` tokens (ids, or words for text) of shared-prefix block `block_id`: the same
    for every request (and worker) that names the block, so a target can reuse its prefix."""
    rng = np.random.default_rng([seed, 0x5EED, block_id])
    if fmt == "token_ids":
        return token_id_prompt(n, rng)
    return [WORDS[i] for i in rng.integers(0, len(WORDS), size=n).tolist()]


def group_prefix(group: int, n: int, fmt: str, seed: int) -> list[int] | list[str]:
    """The `n` tokens (ids, or words for text) of shared prefix `group` (module docstring)."""
    rng = np.random.default_rng([seed, 0x9F1E, group])
    if fmt == "token_ids":
        return token_id_prompt(n, rng)
    return [WORDS[i] for i in rng.integers(0, len(WORDS), size=n).tolist()]


class Body(NamedTuple):
    data: bytes
    prompt_tokens: int  # the client's count (exact for token ids)
    max_tokens: int


class BodyFactory:
    """Encoded request bodies for one producer, each with a fresh prompt.

    Lengths come from the load's workload (`loadtest.workload.lengths_for`; a `trace`
    workload reads `trace` from row `first_row` on). `next_body()` returns a `Body`; `next()` the
    older (body bytes, prompt token count) pair at the load's fixed lengths.
    """

    def __init__(self, load: LoadConfig, builtin: bool, producer: str,
                 trace=None, first_row: int = 0, shard: int = 0, shards: int = 1):
        self.load = load
        self.format = resolve_format(load.prompt_format, builtin)
        self.path = JOBS_PATH if load.api == "job" else PATHS[load.endpoint]
        # Seeded by (seed, producer): each worker of a run draws different, reproducible prompts.
        self._rng = np.random.default_rng([load.seed, zlib.crc32(producer.encode())])
        self._lengths: Iterator[Lengths] = lengths_for(load, self._rng, trace, first_row, exact_bytes=builtin)
        if trace is not None and shards > 1:  # worker `shard` of `shards` sends every shards-th arrival
            self._lengths = itertools.islice(self._lengths, shard, None, shards)
        self.capped = 0  # requests whose lengths were cut to max_context
        self._repeat_rng = np.random.default_rng([load.seed, zlib.crc32(producer.encode()), 0x4E9])
        self._recent: deque[Body] = deque(maxlen=REPEAT_WINDOW)
        self.repeats = 0  # bodies that repeat an earlier one
        self.builtin = builtin
        self.questions = None
        if load.paraphrase_rate:
            from loadtest.paraphrases import QuestionStream, load_groups

            rng = np.random.default_rng([load.seed, zlib.crc32(producer.encode()), 0x9A2])
            self.questions = QuestionStream(load_groups(load.paraphrase_path), load.paraphrase_rate, rng)

    def prompt(self, n: int | None = None, blocks: tuple[int, ...] = ()) -> str | list[int]:
        n = self.load.prompt_tokens if n is None else n
        if blocks:
            return self._prefixed(n, blocks)
        if self.load.prefix_groups:
            return self._grouped(n)
        return token_id_prompt(n, self._rng) if self.format == "token_ids" else text_prompt(n, self._rng)

    def _prefixed(self, n: int, blocks: tuple[int, ...]) -> str | list[int]:
        """Shared blocks first (cut at n tokens), then fresh tokens for the rest."""
        size = self.load.block_tokens
        toks: list = []
        for b in blocks[: -(-n // size)]:
            toks.extend(block_tokens(b, size, self.format, self.load.seed))
        toks = toks[:n]
        return self._then_fresh(toks, n - len(toks))

    def _grouped(self, n: int) -> str | list[int]:
        """One shared prefix (at most n - 1 tokens of it), then fresh tokens up to n."""
        group = int(self._rng.integers(self.load.prefix_groups))
        shared = min(self.load.prefix_tokens, n - 1)
        toks = group_prefix(group, shared, self.format, self.load.seed)
        return self._then_fresh(toks, n - shared)

    def _then_fresh(self, toks: list, rest: int) -> str | list[int]:
        """Shared tokens (ids or words) followed by `rest` fresh ones."""
        if self.format == "token_ids":
            return toks + token_id_prompt(rest, self._rng)
        tail = text_prompt(rest, self._rng) if rest else ""
        return " ".join(toks + ([tail] if tail else []))

    def next_body(self) -> Body:
        if self.load.repeat_rate and self._recent and self._repeat_rng.random() < self.load.repeat_rate:
            self.repeats += 1
            return self._recent[self._repeat_rng.integers(len(self._recent))]
        lengths = next(self._lengths)
        self.capped += lengths.capped
        load = self.load.model_copy(update={"max_tokens": lengths.output})
        prompt: str | list[int]
        if self.questions is not None:
            text = self.questions.next().text
            # Exact for a byte-level tokenizer; about one BPE token per word elsewhere.
            prompt, n_prompt = text, len(text.encode()) if self.builtin else len(text.split())
        elif lengths.text is not None:
            prompt, n_prompt = lengths.text, lengths.prompt
        else:
            prompt, n_prompt = self.prompt(lengths.prompt, lengths.blocks), lengths.prompt
        body = request_body(load, prompt)
        fresh = Body(json.dumps(body, separators=(",", ":")).encode(), n_prompt, lengths.output)
        self._recent.append(fresh)
        return fresh

    def next(self, max_tokens: int | None = None) -> tuple[bytes, int]:
        load = self.load if max_tokens is None else self.load.model_copy(update={"max_tokens": max_tokens})
        body = request_body(load, self.prompt())
        return json.dumps(body, separators=(",", ":")).encode(), load.prompt_tokens
