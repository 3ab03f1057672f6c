"""Admission control in front of the backend: tiers by API key, rate limits, overload policy.

Per request, on the event-loop thread, before it is queued for the engine:

1. tier: the `Authorization: Bearer KEY` header is looked up in the key -> tier map
   (`load_api_keys`); no key or an unknown one gets `default_tier`, or 401 when there is
   none. Keys are never logged, echoed in an error, or reported: only the tier name is.
2. rate limit: the tier's token bucket (refilled at `rate` per second up to `burst`); an
   empty bucket is a 429 `rate_limit_exceeded` with `Retry-After` (whole seconds until
   the next token).
3. overload, for tiers that are not `protected`, by the number of requests waiting for
   the engine (`backend.waiting()`): at `max_queue` or more, 503 `overloaded` with
   `Retry-After`; with `overload="degrade"`, from `degrade_queue` (default max_queue // 2)
   the request is admitted with `max_tokens` capped to `degrade_max_tokens` (less work
   per request, so the queue drains faster), recorded as `degraded: "max_tokens"`; or,
   with `degrade_model`, it is served in full by a second, smaller model's engine (its
   own queue, also bounded by `max_queue`: when that is full too, max_tokens is capped),
   recorded as `degraded: "model"`.
   A request the exact cache can answer (`cached`) never queues, so overload never
   refuses or degrades it: its cached answer is served in full.

Protected tiers are never refused for overload: they queue ahead of the others (the
engine's wait queue is ordered by tier priority), so their latency holds while the
unprotected tiers absorb the overload. Every refusal is an OpenAI-style JSON error whose
`error` object also says `tier` and `reason`, so no request is refused silently.
"""

from __future__ import annotations

import json
import math
import os
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from servelab.config import API_KEYS_ENV, ServerConfig, TierConfig
from serving.errors import ApiError

DEFAULT_TIER = "default"  # the one tier when only a queue bound is configured
OVERLOAD_RETRY_S = 1
_OUTCOMES = {"rate_limit_exceeded": "rate_limited", "overloaded": "rejected"}  # metric labels


class TokenBucket:
    """`burst` tokens, refilled at `rate` per second on a monotonic clock."""

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic):
        self.rate, self.burst, self.clock = rate, burst, clock
        self.tokens, self.t = burst, clock()

    def take(self) -> float:
        """Takes one token: 0.0 if there was one, else the seconds until there will be."""
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.t) * self.rate)
        self.t = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


@dataclass(frozen=True)
class Admitted:
    """An admitted request: its tier, priority, and how it was degraded (None = not)."""

    tier: str
    priority: int
    degraded: str | None = None
    max_tokens: int | None = None  # the cap when degraded
    protected: bool = False


class Refused(ApiError):
    """A refusal (401, 429, 503) whose JSON says the tier and the reason."""

    def __init__(self, status: int, message: str, code: str, tier: str | None, retry_after_s: int | None = None):
        super().__init__(status, message, code=code)
        self.tier = tier
        self.retry_after_s = retry_after_s

    def body(self) -> dict:
        body = super().body()
        body["error"].update(tier=self.tier, reason=self.code)
        return body

    def response(self):
        resp = super().response()
        if self.retry_after_s is not None:
            resp.headers["Retry-After"] = str(self.retry_after_s)
        return resp


def load_api_keys(cfg: ServerConfig, environ: dict | None = None) -> dict[str, str]:
    """key -> tier from `api_keys_file`, then SERVELAB_API_KEYS, then `cfg.api_keys` (later wins).

    Raises ValueError with a reason that never contains a key."""
    keys: dict[str, str] = {}
    if cfg.api_keys_file:
        path = Path(cfg.api_keys_file)
        try:
            text = path.read_text(encoding="utf-8")
            keys.update(tomllib.loads(text) if path.suffix == ".toml" else json.loads(text))
        except OSError as exc:
            raise ValueError(f"cannot read api_keys_file: {exc.strerror}") from None
        except ValueError:
            raise ValueError(f"api_keys_file {path} is not a JSON/TOML table of key = tier") from None
    env = (os.environ if environ is None else environ).get(API_KEYS_ENV)
    if env:
        try:
            keys.update(json.loads(env))
        except ValueError:
            raise ValueError(f"{API_KEYS_ENV} is not a JSON object of key: tier") from None
    keys.update(cfg.api_keys)
    if not all(isinstance(k, str) and isinstance(t, str) for k, t in keys.items()):
        raise ValueError("API keys must map key strings to tier names")
    unknown = sorted({t for t in keys.values() if t not in cfg.tiers})
    if unknown:
        raise ValueError(f"API keys name unknown tier(s): {', '.join(unknown)}")
    return keys


def bearer(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer TOKEN` header, else None."""
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    return (token.strip() or None) if scheme.lower() == "bearer" else None


class AdmissionController:
    """Decides, per request, admit (maybe degraded) or refuse; counts outcomes per tier."""

    def __init__(self, cfg: ServerConfig, waiting: Callable[[], int], keys: dict[str, str], metrics=None,
                 degrade_waiting: Callable[[], int] = lambda: 0):
        self.cfg = cfg
        self.degrade_waiting = degrade_waiting  # the smaller model's queue (degrade_model)
        self.tiers = cfg.tiers or {DEFAULT_TIER: TierConfig()}
        self.default = cfg.default_tier or (DEFAULT_TIER if not cfg.tiers else None)
        self.keys = keys
        self.waiting = waiting
        self.metrics = metrics
        self.buckets = {name: TokenBucket(t.rate, t.burst or max(1.0, t.rate))
                        for name, t in self.tiers.items() if t.rate is not None}
        degrade_at = cfg.degrade_queue if cfg.degrade_queue is not None else (cfg.max_queue or 0) // 2
        self.degrade_at = degrade_at if cfg.overload == "degrade" else None

    def admit(self, authorization: str | None, max_tokens: int, cached: bool = False) -> Admitted:
        """The decision for one request (`cached`: the exact cache can answer it); raises
        `Refused` (counted) when it is not admitted."""
        tier = self.keys.get(bearer(authorization) or "", self.default)
        if tier is None:
            self._count("unauthorized", "")
            raise Refused(401, "missing or unknown API key", "invalid_api_key", None)
        try:
            decision = self._decide(tier, self.tiers[tier], max_tokens, cached)
        except Refused as exc:
            self._count(_OUTCOMES[exc.code or ""], tier)
            raise
        self._count("degraded" if decision.degraded else "admitted", tier)
        return decision

    def _decide(self, name: str, tier: TierConfig, max_tokens: int, cached: bool) -> Admitted:
        bucket = self.buckets.get(name)
        wait = bucket.take() if bucket is not None else 0.0
        if wait > 0:
            raise Refused(429, f"rate limit of tier {name!r} exceeded ({tier.rate:g} requests/s)",
                          "rate_limit_exceeded", name, max(1, math.ceil(wait)))
        if tier.protected or cached:
            return Admitted(name, tier.priority, protected=tier.protected)
        depth = self.waiting()
        if self.cfg.max_queue is not None and depth >= self.cfg.max_queue:
            if bucket is not None:
                bucket.tokens += 1.0  # not served: the rate limit does not charge it
            raise Refused(503, f"server overloaded: {depth} requests waiting (max_queue {self.cfg.max_queue})",
                          "overloaded", name, OVERLOAD_RETRY_S)
        if self.degrade_at is not None and depth >= self.degrade_at:
            room = self.cfg.max_queue is None or self.degrade_waiting() < self.cfg.max_queue
            if self.cfg.degrade_model is not None and room:
                return Admitted(name, tier.priority, "model")
            if max_tokens > self.cfg.degrade_max_tokens:
                return Admitted(name, tier.priority, "max_tokens", self.cfg.degrade_max_tokens)
        return Admitted(name, tier.priority)

    def _count(self, outcome: str, tier: str) -> None:
        if self.metrics is not None:
            self.metrics.count_admission(tier, outcome)
