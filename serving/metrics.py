"""Prometheus metrics of one app, in its own registry (two apps in a process never clash)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from serving.generation import GENERATED

# Seconds; covers a 1 ms calibration gap up to a minutes-long CPU generation.
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class ServerMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self, prefiller=None) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("servelab_requests", "Requests by endpoint and HTTP status", ["endpoint", "status"], registry=r)
        self.prompt_tokens = Counter("servelab_prompt_tokens", "Prompt tokens processed", registry=r)
        self.generated_tokens = Counter("servelab_generated_tokens", "Output tokens generated", registry=r)
        self.in_flight = Gauge("servelab_requests_in_flight", "Completion requests being served", registry=r)
        self.queue = Histogram("servelab_queue_seconds", "Wait before generation starts", buckets=_BUCKETS, registry=r)
        self.prefill = Histogram("servelab_prefill_seconds", "Prompt processing and first token", buckets=_BUCKETS, registry=r)
        self.decode = Histogram("servelab_decode_seconds", "First to last token", buckets=_BUCKETS, registry=r)
        self.batch = Histogram("servelab_batch_size", "Largest decode batch of each finished request",
                               buckets=_BATCH_BUCKETS, registry=r)
        self.generations = Counter("servelab_generations", "Generations run (one per request without "
                                   "result levers; hits and merged followers run none)", registry=r)
        self.cache = Counter("servelab_cache_requests", "Requests by result-lever outcome: exact (cache hit), "
                             "semantic (similar-prompt hit), merged (follower), miss (ran), bypass (not deterministic)", ["outcome"], registry=r)
        self.semantic_lookups = Counter("servelab_semantic_lookups", "Semantic-cache lookups (one embedding each)",
                                        registry=r)
        self.semantic_hits = Counter("servelab_semantic_hits", "Semantic-cache lookups that returned a stored answer",
                                     registry=r)
        self.embed = Histogram("servelab_semantic_embed_seconds", "Embedding a prompt for a semantic lookup "
                               "(its wait for the embedding thread included)", buckets=_BUCKETS, registry=r)
        self.admission = Counter("servelab_admission_requests", "Admission outcomes by tier: admitted, degraded, "
                                 "rate_limited (429), rejected (503 overloaded), unauthorized (401)",
                                 ["tier", "outcome"], registry=r)
        self.queue_depth = Gauge("servelab_queue_depth", "Requests waiting for the engine", registry=r)
        self.ttft = Histogram("servelab_ttft_seconds", "Request received to first chunk sent", buckets=_BUCKETS, registry=r)
        if prefiller is not None:
            r.register(_PrefillCollector(prefiller))

    def count(self, endpoint: str, status: int) -> None:
        self.requests.labels(endpoint=endpoint, status=str(status)).inc()

    def count_outcome(self, outcome: str, levers: bool) -> None:
        """One submitted request; `outcome` is its timings' `cache` field."""
        if outcome in GENERATED:
            self.generations.inc()
        if levers:
            self.cache.labels(outcome=outcome).inc()

    def count_lookup(self, embed_ms: float, hit: bool) -> None:
        """One semantic-cache lookup."""
        self.semantic_lookups.inc()
        self.embed.observe(embed_ms / 1e3)
        if hit:
            self.semantic_hits.inc()

    def count_admission(self, tier: str, outcome: str) -> None:
        self.admission.labels(tier=tier, outcome=outcome).inc()

    def count_tokens(self, prompt_tokens: int, output_tokens: int) -> None:
        """Work done by one request, finished or abandoned."""
        self.prompt_tokens.inc(prompt_tokens)
        self.generated_tokens.inc(output_tokens)

    def observe_done(self, timings: dict) -> None:
        """Record one finished generation from its `servelab` timings object."""
        self.queue.observe(timings["queue_ms"] / 1e3)
        self.prefill.observe(timings["prefill_ms"] / 1e3)
        self.decode.observe(timings["decode_ms"] / 1e3)
        self.batch.observe(timings["batch_size"])

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _PrefillCollector:
    """The engine's prefill counters (serving/prefix.py `Prefiller`), read at scrape time:
    the engine thread only adds to plain ints, it never touches the registry."""

    def __init__(self, prefiller) -> None:
        self.prefiller = prefiller

    def collect(self):
        p = self.prefiller
        yield CounterMetricFamily("servelab_prefix_lookups", "Prompts looked up in the prefix store "
                                  "(0 while prefix reuse is off)", value=p.lookups)
        yield CounterMetricFamily("servelab_prefix_hit_tokens", "Prompt tokens whose K/V were copied "
                                  "from the prefix store, not computed", value=p.hit_tokens)
        yield CounterMetricFamily("servelab_prefill_computed_tokens", "Prompt tokens run through the "
                                  "model at prefill", value=p.computed_tokens)
