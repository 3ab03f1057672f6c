"""Choosing the next token: the printable-ASCII logit mask, greedy, temperature, top-p.

The mask keeps only ids 32-126 and EOS, so every generated token is exactly one character
and one streamed chunk: chunk counts, token counts and client-side counts all agree.
"""

from __future__ import annotations

import torch

from serving.tokenizer import EOS, PRINTABLE, VOCAB_SIZE


def allowed_mask(device: str = "cpu") -> torch.Tensor:
    """Boolean [vocab]: True for printable ASCII and EOS. `sample` takes its complement."""
    mask = torch.zeros(VOCAB_SIZE, dtype=torch.bool, device=device)
    mask[PRINTABLE.start:PRINTABLE.stop] = True
    mask[EOS] = True
    return mask


def new_generator(seed: int | None, device: str = "cpu") -> torch.Generator:
    """Per-request RNG: the same seed gives the same text, whatever else is running."""
    gen = torch.Generator(device=device)
    if seed is None:
        gen.seed()  # nondeterministic, as OpenAI's API is without a seed
    else:
        gen.manual_seed(seed)
    return gen


def sample(
    logits: torch.Tensor,
    banned: torch.Tensor,
    temperature: float,
    top_p: float,
    generator: torch.Generator,
    allow_eos: bool,
) -> int:
    """One token id from logits [vocab] (any float dtype); `banned` is ~allowed_mask()."""
    logits = logits.float().masked_fill(banned, float("-inf"))
    if not allow_eos:
        logits[EOS] = float("-inf")
    if temperature == 0:
        return int(logits.argmax())
    probs = torch.softmax(logits / temperature, dim=-1)
    if top_p < 1.0:
        probs = _top_p(probs, top_p)
    return int(torch.multinomial(probs, 1, generator=generator))


def _top_p(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """Keep the smallest set of most likely tokens whose mass reaches top_p (nucleus)."""
    sorted_probs, order = probs.sort(descending=True)
    cumulative = sorted_probs.cumsum(-1)
    drop = cumulative - sorted_probs >= top_p  # mass before this token already enough
    sorted_probs[drop] = 0.0
    return torch.zeros_like(probs).scatter_(-1, order, sorted_probs)
