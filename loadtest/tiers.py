"""Tiered load: which API key each request carries, so one step offers several tiers' traffic.

`LoadConfig.tier_mix` gives each tier a share of the requests; the key of each tier is
found in SERVELAB_API_KEYS (JSON key -> tier, the same variable the built-in server reads)
in this process's environment, so keys are never in a spec file, a record or the store.
Each request's tier is drawn independently with those shares from a generator seeded by
(seed, producer): reproducible, and different per worker. Pure: importable anywhere.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping

from servelab.config import API_KEYS_ENV


def keys_for(mix: Mapping[str, float], environ: Mapping[str, str]) -> dict[str, str]:
    """tier -> the first key (in sorted order) that maps to it; ValueError (naming no key)
    when the variable is missing or a tier of the mix has no key."""
    try:
        keys = json.loads(environ.get(API_KEYS_ENV) or "{}")
    except ValueError:
        raise ValueError(f"{API_KEYS_ENV} is not a JSON object of key: tier") from None
    if not isinstance(keys, dict):
        raise ValueError(f"{API_KEYS_ENV} is not a JSON object of key: tier")
    by_tier: dict[str, str] = {}
    for key in sorted(keys):
        by_tier.setdefault(keys[key], key)
    missing = sorted(t for t in mix if t not in by_tier)
    if missing:
        raise ValueError(f"tier_mix: no key for tier(s) {', '.join(missing)} in {API_KEYS_ENV}")
    return {tier: by_tier[tier] for tier in mix}


class TierPicker:
    """Draws a tier per request with the mix's shares; `pick()` returns that tier's item."""

    def __init__(self, mix: Mapping[str, float], items: Mapping[str, object], seed: int, producer: str):
        self.tiers = [t for t in mix if mix[t] > 0]
        self.weights = [mix[t] for t in self.tiers]
        self.items = items
        self._rng = random.Random(f"{seed}/{producer}/tiers")

    def pick(self):
        return self.items[self._rng.choices(self.tiers, self.weights)[0]]
