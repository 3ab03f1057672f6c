"""Output fidelity: do a setup's greedy answers match the baseline setup's, prompt by prompt?

Levers that can change answers (int8/bf16, a semantic cache, degrading, a smaller model)
are judged on the same fixed prompts sent with temperature 0. Inputs are token sequences
(ids, or token strings where a server gives no ids), one per prompt, in the same order
for both setups. Pure (docs/metrics.md, "Output fidelity").

- exact-match rate = prompts whose whole output equals the baseline's / prompts
- token agreement = sum over prompts of positions where both have the same token /
  sum over prompts of max(len(baseline), len(candidate)); a length difference counts
  as disagreement
- first divergence = mean over prompts of the first position where they differ
  (the common length when one is a prefix of the other; the full length when equal)
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any


def first_divergence(a: Sequence[Hashable], b: Sequence[Hashable]) -> int:
    """The first index where a and b differ (min length if one is a prefix of the other)."""
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return min(len(a), len(b))


def compare_outputs(baseline: Sequence[Sequence[Hashable]], candidate: Sequence[Sequence[Hashable]]) -> dict[str, Any]:
    """Exact-match rate, token agreement and mean first divergence (module docstring)."""
    if len(baseline) != len(candidate):
        raise ValueError(f"{len(baseline)} baseline outputs but {len(candidate)} candidate outputs: "
                         "compare answers to the same prompts")
    if not baseline:
        return {"prompts": 0, "exact_match_rate": None, "token_agreement": None, "mean_first_divergence": None}
    exact = agree = positions = div = 0
    for a, b in zip(baseline, candidate):
        exact += list(a) == list(b)
        agree += sum(x == y for x, y in zip(a, b))
        positions += max(len(a), len(b))
        div += first_divergence(a, b)
    return {"prompts": len(baseline), "exact_match_rate": exact / len(baseline),
            "token_agreement": 1.0 if positions == 0 else agree / positions,
            "mean_first_divergence": div / len(baseline)}
