"""Prefix reuse: the keys and values of a shared prompt prefix are computed once.

Like vLLM's automatic prefix caching (and SGLang's RadixAttention), at block granularity.
A prompt is cut into blocks of `block` tokens; block i's key is a hash chain,

    key_i = blake2b(key_{i-1} || tokens of block i)

so equal keys mean equal prefixes up to the end of block i (a 128-bit digest: a collision
is as unlikely as a random one). The store maps a key to that block's K/V, [layers,
heads, block, head_dim] each, and holds at most `budget_tokens` tokens of them.

On prefill, the longest cached block-aligned prefix strictly shorter than the prompt (the
last position must be computed: it gives the logits of the first output token) is copied
into the request's cache row, and the model runs only on the rest, from that position.
After the prefill, the prompt's full blocks not yet stored are stored.

Eviction is LRU by block. A lookup or store touches a prompt's blocks deepest first, so a
block is always more recent than every block after it in its prompt: eviction takes leaves
before their parents, and never leaves a stored block unreachable behind an evicted one.

Exact, not approximate: causal attention makes the K/V at position p a function of tokens
0..p only, so a stored block is what the prefill would recompute (up to fp rounding of
other matmul shapes). Not so under int8 dynamic quantization, which scales activations
per tensor, i.e. over the whole prompt: reused K/V then differ slightly from recomputed
ones (as batch-mates already change a row's logits under int8).
"""

from __future__ import annotations

import hashlib
from array import array
from collections import OrderedDict
from dataclasses import dataclass, field
from itertools import groupby

import torch

from serving.model import KVCache, Transformer


@dataclass
class Hit:
    """A prompt's full-block keys, and the stored blocks that begin it (the reused prefix)."""

    keys: list[bytes]
    blocks: list[tuple[torch.Tensor, torch.Tensor]] = field(default_factory=list)
    block: int = 0

    @property
    def tokens(self) -> int:
        return len(self.blocks) * self.block


def block_keys(ids: list[int], block: int) -> list[bytes]:
    """The hash-chain key of every full block of `ids` (formula: module docstring)."""
    keys, parent = [], b""
    for end in range(block, len(ids) + 1, block):
        parent = hashlib.blake2b(parent + array("i", ids[end - block:end]).tobytes(), digest_size=16).digest()
        keys.append(parent)
    return keys


class PrefixStore:
    """K/V of cached prompt blocks, LRU-bounded to `budget_tokens` tokens."""

    def __init__(self, block: int, budget_tokens: int):
        self.block = block
        self.capacity = budget_tokens // block  # blocks
        self.blocks: OrderedDict[bytes, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()

    @property
    def tokens(self) -> int:
        return len(self.blocks) * self.block

    def lookup(self, ids: list[int]) -> Hit:
        """The longest stored prefix of whole blocks that leaves at least one token to compute."""
        hit = Hit(block_keys(ids, self.block), block=self.block)
        for key in hit.keys[: (len(ids) - 1) // self.block]:
            kv = self.blocks.get(key)
            if kv is None:
                break
            hit.blocks.append(kv)
        self._touch(hit.keys[: len(hit.blocks)])
        return hit

    def load(self, hit: Hit, cache: KVCache, row: int) -> None:
        """Copy the hit's K/V into positions 0..hit.tokens of `row` of `cache`."""
        if hit.blocks:
            n = hit.tokens
            cache.k[:, row, :, :n] = torch.cat([k for k, _ in hit.blocks], dim=2)
            cache.v[:, row, :, :n] = torch.cat([v for _, v in hit.blocks], dim=2)

    def save(self, hit: Hit, cache: KVCache, row: int) -> None:
        """Store the prompt's full blocks past the hit, read from `row` of `cache` (prefilled)."""
        keys = hit.keys[: self.capacity]  # more would only evict this prompt's own first blocks
        for i in range(len(hit.blocks), len(keys)):
            if keys[i] not in self.blocks:
                a, b = i * self.block, (i + 1) * self.block
                self.blocks[keys[i]] = (cache.k[:, row, :, a:b].clone(), cache.v[:, row, :, a:b].clone())
        self._touch(keys)
        while len(self.blocks) > self.capacity:
            self.blocks.popitem(last=False)

    def _touch(self, keys: list[bytes]) -> None:
        for key in reversed(keys):  # deepest first: parents end up more recent than children
            if key in self.blocks:
                self.blocks.move_to_end(key)


@dataclass(frozen=True)
class Prefilled:
    """One prompt after prefill: its index in the batch, last-position logits, reused tokens."""

    index: int
    logits: torch.Tensor
    reused: int


class Prefiller:
    """Runs prompt prefills for the engine, reusing stored prefixes when a store is given.

    Counters (read by /metrics): `lookups` (prompts looked up in the store), `hit_tokens`
    (prompt tokens whose K/V were copied, not computed), `computed_tokens` (prompt tokens
    run through the model).
    """

    def __init__(self, model: Transformer, store: PrefixStore | None, device: str):
        self.model, self.store, self.device = model, store, device
        self.lookups = self.hit_tokens = self.computed_tokens = 0

    def run(self, cache: KVCache, first_row: int, prompts: list[list[int]]) -> list[Prefilled]:
        """Prefill `prompts` into rows first_row, first_row + 1, ... of `cache`.

        Prompts with the same (reused length, prompt length) run as one [n, T] forward pass,
        so misses of equal length are still one pass. Rows are filled in the order of the
        result, which groups prompts that way (misses first, each group in prompt order).
        """
        hits = [self._lookup(p) for p in prompts]
        order = sorted(range(len(prompts)), key=lambda i: (hits[i].tokens, len(prompts[i])))
        out, row = [], first_row
        for (start, _), group in groupby(order, key=lambda i: (hits[i].tokens, len(prompts[i]))):
            same = list(group)
            view = cache.slot(row, len(same))
            if self.store is not None:
                for j, i in enumerate(same):
                    self.store.load(hits[i], view, j)
            tokens = torch.tensor([prompts[i][start:] for i in same], device=self.device)
            logits = self.model(tokens, view, start)[:, -1]
            if self.store is not None:
                for j, i in enumerate(same):
                    self.store.save(hits[i], view, j)
            self.computed_tokens += tokens.numel()
            self.hit_tokens += start * len(same)
            out += [Prefilled(i, logits[j], start) for j, i in enumerate(same)]
            row += len(same)
        return out

    def _lookup(self, ids: list[int]) -> Hit:
        if self.store is None:
            return Hit([])
        self.lookups += 1
        return self.store.lookup(ids)
