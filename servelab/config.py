"""The one typed config model: config files, CLI flags and environment all resolve to these
(precedence and variable names: servelab/layers.py).

Pure pydantic, no heavy imports: the server process, the load-generator process and the CLI
all parse the same JSON with these classes, and the resolved `RunConfig` is stored with
every run (`RunConfig.model_dump(mode="json")`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator, model_validator

from servelab import headers as header_rules

ENV_PREFIX = "SERVELAB_"
API_KEYS_ENV = "SERVELAB_API_KEYS"  # JSON {key: tier}: the server's keys, and the load generator's
DEFAULT_STORE = "servelab.duckdb"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


# The built-in server's named sizes (serving/model.py SIZES has their shapes; a test keeps
# the two in step). Listed here so a wrong name fails before any process starts.
MODEL_SIZES = ("tiny", "small", "base")


class TierConfig(_Model):
    """One priority tier of the built-in server's admission control (serving/admission.py)."""

    priority: int = Field(0, ge=0, le=1000, description="lower is served first from the wait queue")
    rate: float | None = Field(None, gt=0, description="token bucket refill, requests/s; None = no limit")
    burst: float | None = Field(None, ge=1, description="token bucket size; default max(1, rate)")
    protected: bool = Field(False, description="never rejected or degraded for overload (rate limit still applies)")


class ServerConfig(_Model):
    """One setup of the built-in reference server (the levers grow here)."""

    host: str = "127.0.0.1"
    port: int = Field(0, ge=0, le=65535, description="0 picks a free port")
    model: str = Field("small", description="named model size: tiny, small, base")
    device: Literal["cpu", "cuda"] = "cpu"
    precision: Literal["fp32", "bf16", "fp16", "int8"] = "fp32"
    threads: int = Field(1, ge=1, le=256, description="torch intra-op threads")
    max_context: int = Field(2048, ge=16, le=1 << 16, description="prompt + output tokens")
    max_tokens_limit: int = Field(4096, ge=1, description="largest max_tokens accepted")
    max_body_bytes: int = Field(4 << 20, ge=1024, description="larger request bodies get 413")
    seed: int = 0
    # Batching: "none" serves one request at a time; "static" waits up to max_wait_ms to
    # fill a batch, then runs it to completion; "continuous" lets requests join and leave
    # the running batch at every decode step.
    batching: Literal["none", "static", "continuous"] = "none"
    max_batch_size: int = Field(8, ge=1, le=1024, description="sequences decoded together")
    max_wait_ms: float = Field(5.0, ge=0, le=60_000, description="static: wait to fill a batch")
    reserved_rows: int = Field(0, ge=0, description="static/continuous: batch rows only protected tiers' "
                               "requests may take, so they never wait for a full batch to drain")
    # Result levers (serving/cache.py), deterministic requests only (temperature 0 or a seed):
    # an exact-match LRU result cache, and merging identical requests while they generate.
    exact_cache: bool = False
    cache_size: int = Field(1024, ge=1, description="exact cache: entries kept (LRU)")
    cache_ttl_s: float = Field(600.0, gt=0, description="exact and semantic caches: seconds an entry lives")
    merge_inflight: bool = False
    # Admission (serving/admission.py): a request's tier comes from its bearer key; each tier
    # has a priority in the wait queue and an optional token-bucket rate limit. `api_keys`
    # (key -> tier) is a secret: excluded from every dump (so never in the stored run config
    # nor on a command line); the server also reads keys from `api_keys_file` (JSON or TOML,
    # key -> tier) and from the SERVELAB_API_KEYS environment variable (JSON, key -> tier).
    tiers: dict[str, TierConfig] = Field(default_factory=dict, description="tier name -> tier; empty = no tiers")
    api_keys: dict[str, str] = Field(default_factory=dict, exclude=True, repr=False)
    api_keys_file: str | None = Field(None, description="JSON or TOML file: API key -> tier name")
    default_tier: str | None = Field(None, description="tier of requests with no or an unknown key; "
                                     "None = such requests get 401")
    max_queue: int | None = Field(None, ge=0, description="requests waiting for the engine beyond which "
                                  "unprotected tiers are refused (503); None = unbounded")
    overload: Literal["reject", "degrade"] = Field(
        "reject", description="degrade: from degrade_queue waiting, unprotected requests get degrade_max_tokens")
    degrade_queue: int | None = Field(None, ge=0, description="degrade: queue depth where degrading starts; "
                                      "default max_queue // 2")
    degrade_max_tokens: int = Field(16, ge=1, description="degrade: max_tokens cap of a degraded request")
    degrade_model: str | None = Field(None, description="degrade: serve degraded requests (in full) on this "
                                      "smaller model size, a second engine, instead of capping max_tokens")
    # Semantic cache (serving/semantic.py): a deterministic request whose prompt means the
    # same as a stored one (embedding cosine similarity >= semantic_threshold, same
    # parameters) gets the stored answer. Entries live cache_ttl_s, like the exact cache's.
    semantic_cache: bool = False
    semantic_threshold: float = Field(0.9, gt=0, le=1, description="semantic cache: least cosine "
                                      "similarity of a hit (bench/semantic.py measures the trade)")
    semantic_cache_size: int = Field(1024, ge=1, le=1 << 14, description="semantic cache: entries kept (LRU; "
                                     "a lookup scores them all on the event loop: 0.35 ms at 10k on a 2-core VM)")
    # Prefix reuse (serving/prefix.py): the K/V of block-aligned prompt prefixes are kept
    # (LRU, up to prefix_cache_tokens tokens) and copied into later requests that share them.
    prefix_cache: bool = False
    prefix_block: int = Field(16, ge=1, le=4096, description="prefix reuse: tokens per block")
    prefix_cache_tokens: int = Field(8192, ge=1, le=1 << 24, description="prefix reuse: tokens of K/V kept")
    # Async jobs (serving/jobs.py): POST /v1/jobs, then poll GET /v1/jobs/{id}.
    max_jobs: int = Field(1024, ge=1, description="jobs: queued + running at most; more get 429")
    job_concurrency: int = Field(64, ge=1, description="jobs: handed to the backend at once; the rest wait queued")
    job_ttl_s: float = Field(600.0, gt=0, description="jobs: seconds a finished job's result is kept")
    job_wait_max_s: float = Field(60.0, gt=0, le=3600, description="jobs: longest long-poll (?wait=S)")
    # Replicas: N server processes behind an HAProxy front (servelab/replicas.py); 1 = direct.
    replicas: int = Field(1, ge=1, le=64, description="server processes behind a load balancer")
    balance: Literal["leastconn", "roundrobin"] = Field(
        "leastconn", description="replicas: HAProxy balancing algorithm")
    # Calibration mode: no model; every stream has exactly these timings.
    calibration: bool = False
    calib_ttft_ms: float = Field(50.0, ge=0)
    calib_itl_ms: float = Field(10.0, ge=0)
    calib_log: str | None = Field(None, description="JSONL file of true send times")
    calib_concurrency: int | None = Field(None, ge=1, le=100_000, description="calibration: at most this many "
                                          "streams at once, the rest queue (a known-capacity server)")

    @field_validator("model", "degrade_model")
    @classmethod
    def _known_size(cls, v: str | None) -> str | None:
        if v is not None and v not in MODEL_SIZES:
            raise ValueError(f"unknown model size {v!r}: choose {', '.join(MODEL_SIZES)}")
        return v

    @model_validator(mode="after")
    def _admission_fits(self) -> ServerConfig:
        names = set(self.tiers)
        if self.default_tier is not None and self.default_tier not in names:
            raise ValueError(f"default_tier {self.default_tier!r} is not one of the tiers")
        if any(tier not in names for tier in self.api_keys.values()):
            raise ValueError("api_keys map a key to a tier that is not configured")  # no key in the text
        if self.reserved_rows >= self.max_batch_size:
            raise ValueError(f"reserved_rows ({self.reserved_rows}) must leave room in max_batch_size "
                             f"({self.max_batch_size}) for unprotected requests")
        if self.overload == "degrade" and self.max_queue is None and self.degrade_queue is None:
            raise ValueError("overload 'degrade' needs max_queue or degrade_queue")
        return self

    def child_env(self, environ: Mapping[str, str]) -> dict[str, str]:
        """The environment for a server process of this config: `api_keys` are not in its
        JSON (excluded from dumps, so never on a command line), so they travel merged into
        SERVELAB_API_KEYS, which only the process's owner can read."""
        env = dict(environ)
        if self.api_keys:
            inherited = json.loads(env.get(API_KEYS_ENV) or "{}")
            env[API_KEYS_ENV] = json.dumps({**inherited, **self.api_keys})
        return env

    @property
    def admission(self) -> bool:
        """Whether any admission lever is on (tiers, keys or a queue bound)."""
        return bool(self.tiers or self.api_keys or self.api_keys_file or self.max_queue is not None
                    or self.degrade_queue is not None)

    @model_validator(mode="after")
    def _prefix_fits(self) -> ServerConfig:
        if self.prefix_cache and self.prefix_cache_tokens < self.prefix_block:
            raise ValueError(f"prefix_cache_tokens ({self.prefix_cache_tokens}) must hold at least "
                             f"one block of prefix_block ({self.prefix_block}) tokens")
        return self


Arrival = Literal["poisson", "constant", "gamma", "ramp", "steps", "trace"]
Workload = Literal["fixed", "uniform", "normal", "lognormal", "trace", "dataset"]
TraceFormat = Literal["auto", "azure", "mooncake", "burstgpt"]


class LoadConfig(_Model):
    """How load is offered to the target during one step.

    Arrivals (open loop): `poisson`/`constant` at `rate`; `gamma` at `rate` with shape
    `burstiness` (CV^2 = 1/burstiness); `ramp` from `rate` to `rate_end`; `steps` through
    `rate_steps` [(rate, seconds), ...]; `trace` at the timestamps of `trace_path` divided
    by `time_scale`. Lengths per request come from `workload` (see loadtest/workload.py),
    each capped so prompt + output <= `max_context`.
    """

    mode: Literal["closed", "open"] = "closed"
    users: int = Field(1, ge=1, le=100_000, description="closed loop: concurrent users")
    rate: float | None = Field(None, gt=0, description="open loop: requests per second")
    arrival: Arrival = "poisson"
    burstiness: float = Field(1.0, gt=0, le=1000, description="gamma shape k: CV^2 = 1/k, 1 = Poisson")
    arrival_count: Literal["exact", "random"] = Field(
        "exact", description="poisson/gamma/ramp/steps: exact offers round(rate x duration) arrivals "
        "(the process conditioned on that count); random lets the count vary as the process does")
    rate_end: float | None = Field(None, gt=0, description="ramp: requests per second at the end")
    rate_steps: list[tuple[float, float]] | None = Field(None, description="steps: [(rate, seconds), ...]")
    think_time_s: float = Field(0.0, ge=0, description="closed loop: pause between a user's requests")
    duration_s: float = Field(10.0, gt=0, le=7 * 24 * 3600)
    max_requests: int | None = Field(None, ge=1)
    warmup_s: float | None = Field(None, ge=0, description="default: 10% of duration")
    drain_s: float = Field(30.0, ge=0, description="wait for in-flight requests after the step")
    max_tokens: int = Field(64, ge=1)
    prompt_tokens: int = Field(128, ge=1)
    workload: Workload = "fixed"
    length_cv: float = Field(0.5, ge=0, le=10, description="uniform/normal/lognormal: std / mean")
    max_context: int = Field(2048, ge=2, description="cap: prompt + output tokens per request")
    output_cap: int | None = Field(None, ge=1, description="cap: output tokens per request (any workload)")
    trace_path: str | None = Field(None, description="Azure CSV, Mooncake JSONL or BurstGPT CSV")
    trace_format: TraceFormat = "auto"
    dataset_path: str | None = Field(None, description="JSONL prompts: ShareGPT conversations or prompt rows")
    time_scale: float = Field(1.0, gt=0, le=1e6, description="trace: 60 replays an hour in a minute")
    trace_start_s: float = Field(0.0, ge=0, description="trace: skip this many trace seconds")
    block_tokens: int = Field(512, ge=1, description="trace hash_ids: tokens per shared block")
    prompt_format: Literal["auto", "text", "token_ids"] = "auto"
    endpoint: Literal["completions", "chat"] = "completions"
    api: Literal["stream", "nonstream", "job"] = Field(
        "stream", description="stream (SSE), nonstream (one JSON body) or job (submit, then long-poll "
        "/v1/jobs): the last two time only the whole result")
    timeout_s: float = Field(120.0, gt=0, description="per-request timeout")
    ignore_eos: bool | None = Field(
        None, description="send ignore_eos/min_tokens (vLLM/SGLang extensions) so every output is max_tokens "
        "long: None = when the target accepts them (probed at warm-up; the stored run says what was used)")
    repeat_rate: float = Field(0.0, ge=0, le=1, description="fraction of requests repeating one of "
                               "this worker's last 32 prompts (exact-cache hits on the target)")
    paraphrase_rate: float = Field(0.0, ge=0, le=1, description="above 0, prompts are questions from the "
                                   "paraphrase set and this fraction paraphrase an earlier one (semantic-cache hits)")
    paraphrase_path: str | None = Field(None, description="paraphrase set (default: data/paraphrases/)")
    prefix_groups: int = Field(0, ge=0, le=1_000_000, description="shared prefixes (e.g. system prompts); "
                               "each prompt starts with one of them, picked at random; 0 = none")
    prefix_tokens: int = Field(0, ge=0, description="tokens of each shared prefix (the rest of a prompt is fresh)")
    seed: int = 0
    served_model: str | None = Field(
        None, description="model name sent to the target (default with a URL target: the first id of its /v1/models)")
    headers: dict[str, str] = Field(default_factory=dict, description="extra request headers (gateways); "
                                    "credential-like values are never stored (servelab/headers.py)")
    extra_body: dict[str, Any] = Field(default_factory=dict, description="fields merged into every request "
                                       "body (engine options, e.g. {\"top_k\": 1})")
    # Tiered traffic (loadtest/tiers.py): each request carries the key of a tier drawn with
    # these shares; the keys come from SERVELAB_API_KEYS (key -> tier) in the load
    # generator's environment, never from this config, so they are never stored.
    tier_mix: dict[str, float] | None = Field(None, description="tier -> share of requests, "
                                              "e.g. {high: 0.2, low: 0.8}")
    api_key_env: str | None = Field(None, description="name of an env var holding one bearer token "
                                    "for every request (external targets)")

    @model_validator(mode="before")
    @classmethod
    def _old_model_key(cls, data: Any) -> Any:
        """`model` was this field's name (SERVELAB_LOAD_MODEL, older config files and stored runs)."""
        if isinstance(data, dict) and "model" in data:
            data = dict(data)
            old = data.pop("model")
            if data.get("served_model") is None:
                data["served_model"] = old
        return data

    @field_validator("headers")
    @classmethod
    def _sendable(cls, v: dict[str, str]) -> dict[str, str]:
        for name, value in v.items():
            header_rules.check(name, value)
        return v

    @field_serializer("headers")
    def _hide_secrets(self, v: dict[str, str]) -> dict[str, str]:
        return header_rules.redacted(v)  # every dump: stored configs, spec files, exports

    @field_validator("tier_mix")
    @classmethod
    def _shares(cls, v: dict[str, float] | None) -> dict[str, float] | None:
        if v is not None and (not v or any(s < 0 for s in v.values()) or sum(v.values()) <= 0):
            raise ValueError("tier_mix needs at least one tier and shares >= 0 that sum above 0")
        return v

    @model_validator(mode="after")
    def _mode_matches(self) -> LoadConfig:
        problem = self._problem()
        if problem:
            raise ValueError(problem)
        return self

    def _problem(self) -> str | None:
        """The first inconsistency between fields, as one line, or None."""
        needs_rate = self.arrival not in ("trace", "steps")
        if self.mode == "open" and needs_rate and self.rate is None:
            return "open-loop load needs a rate (requests per second)"
        if self.mode == "closed" and self.arrival in ("trace", "steps", "ramp", "gamma"):
            return f"{self.arrival} arrivals are open-loop: give a rate or use mode=open"
        if self.mode == "open" and self.think_time_s:
            return "think time is for closed-loop users, not open-loop arrivals"
        if self.arrival == "ramp" and self.rate_end is None:
            return "a ramp needs rate_end (requests per second at the end of the step)"
        if self.arrival == "steps" and not self.rate_steps:
            return "steps arrivals need rate_steps: [(rate, seconds), ...]"
        if self.rate_steps and any(r < 0 or s <= 0 for r, s in self.rate_steps):
            return "rate_steps: each rate must be >= 0 and each duration > 0 seconds"
        if self.tier_mix and self.api_key_env:
            return "give either tier_mix (keys per tier) or api_key_env (one key), not both"
        if self.workload == "dataset" and not self.dataset_path:
            return "workload 'dataset' needs a dataset_path (a JSONL file of prompts)"
        if self.paraphrase_rate and self.workload == "dataset":
            return "paraphrase_rate sends the paraphrase set's questions: not with a dataset's prompts"
        if "trace" in (self.arrival, self.workload) and not self.trace_path:
            return f"{'arrival' if self.arrival == 'trace' else 'workload'} 'trace' needs a trace_path"
        return self._prefix_problem()

    def _prefix_problem(self) -> str | None:
        if bool(self.prefix_groups) != bool(self.prefix_tokens):
            return "shared prefixes need both prefix_groups and prefix_tokens (or neither)"
        if self.prefix_groups and self.workload not in ("fixed", "uniform", "normal", "lognormal"):
            return (f"prefix_groups shapes generated prompts; workload '{self.workload}' brings its own "
                    "(a trace's hash_ids already share prefixes)")
        if self.prefix_groups and self.paraphrase_rate:
            return "prefix_groups shapes generated prompts; paraphrase_rate sends the paraphrase set's questions"
        if self.prefix_tokens and self.prefix_tokens >= self.prompt_tokens:
            return (f"prefix_tokens ({self.prefix_tokens}) must be less than prompt_tokens "
                    f"({self.prompt_tokens}): each prompt ends with a fresh suffix")
        return None

    @property
    def warmup(self) -> float:
        return self.duration_s * 0.1 if self.warmup_s is None else min(self.warmup_s, self.duration_s)


class SLOTerm(_Model):
    """One term of an SLO: `metric_pP <= threshold_ms`, e.g. ttft_p99<=500ms."""

    metric: Literal["ttft", "itl", "tpot", "e2e", "ttft_sched"]
    percentile: float = Field(ge=0, le=100)
    threshold_ms: float = Field(gt=0)


class SamplerConfig(_Model):
    """What is recorded beside a run: GPU (NVML), host (psutil), a torch-profiler window."""

    enabled: bool = Field(True, description="run the sampler process beside the load")
    gpu: Literal["auto", "off", "simulated"] = Field(
        "auto", description="auto: NVML if a GPU is there, else off (never simulated silently)")
    gpu_hz: float = Field(10.0, gt=0, le=100, description="NVML refreshes power every ~100 ms")
    host_hz: float = Field(2.0, gt=0, le=100)
    device_indices: list[int] | None = Field(None, description="GPU indices; None = all")
    torch_profile_s: float | None = Field(None, gt=0, description="torch-profiler window length")
    torch_profile_at_s: float | None = Field(
        None, ge=0, description="window start, seconds into the step; None = when warm-up ends")


class RunConfig(_Model):
    """Everything that defines one run; stored, resolved, with the run."""

    target: str = Field("builtin", description="'builtin' or an OpenAI-compatible base URL")
    label: str | None = None
    load: LoadConfig = Field(default_factory=LoadConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)
    slo: list[SLOTerm] = Field(default_factory=list)
    profile: SamplerConfig = Field(default_factory=SamplerConfig)
    workers: int = Field(1, ge=1, le=64, description="load-generator processes on this machine")
    # Locust's master/worker mode (loadtest/master.py): a master process hands out the shards;
    # `remote_workers` more connect from other machines to `master_bind` and ship their records.
    locust_master: bool = Field(False, description="run the workers under a Locust master")
    remote_workers: int = Field(0, ge=0, le=1024, description="workers expected from other machines")
    master_bind: str = Field("127.0.0.1:0", description="HOST[:PORT] the master listens on (0: any free port)")
    # An engine launched for the run (servelab/engines.py): started on a free local port,
    # measured like a URL target, stopped after. Its own environment: engine_python.
    engine: Literal["vllm", "sglang", "llamacpp", "tgi", "transformers", "command"] | None = Field(
        None, description="launch this engine for the run (command: any command line with {port})")
    engine_args: str = Field("", description="the engine's own arguments, e.g. \"--model /m --dtype float32\" "
                             "(command: the whole command line)")
    engine_python: str | None = Field(None, description="the Python that runs the engine (its own venv); "
                                      "its bin/ holds the engine's console scripts")
    engine_ready_timeout_s: float = Field(600.0, gt=0, le=24 * 3600, description="seconds to wait for "
                                          "the engine to answer /health or /v1/models")

    @model_validator(mode="after")
    def _workers_fit(self) -> RunConfig:
        host, _, port = self.master_bind.rpartition(":") if ":" in self.master_bind else (self.master_bind, "", "0")
        if not host or not port.isdigit():
            raise ValueError(f"bad master_bind {self.master_bind!r}: expected HOST or HOST:PORT, e.g. 0.0.0.0:5557")
        if self.remote_workers and host in ("127.0.0.1", "localhost"):
            raise ValueError("remote workers need master_bind on an address other machines reach, "
                             "e.g. --master-bind 0.0.0.0:5557")
        n = self.workers + self.remote_workers
        if self.load.mode == "closed" and n > self.load.users:
            raise ValueError(f"{n} workers need at least as many --users ({self.load.users})")
        return self

    @property
    def distributed(self) -> bool:
        """Whether the step runs under a Locust master."""
        return self.locust_master or self.remote_workers > 0
