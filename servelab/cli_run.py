"""`servelab serve` and `servelab run`: the built-in server, and one run against a target.

Every knob is a flag here, a field of the one typed model (`servelab/config.py`), and
settable from a config file and the environment too (`servelab/layers.py`).
"""

from __future__ import annotations

import json
import os
from typing import Annotated

import typer

from servelab.cli_common import (
    DEFAULT_STORE,
    ConfigOpt,
    JsonOpt,
    StoreOpt,
    app,
    parse_indices,
    parse_slo_flag,
    stderr_console,
    stdout_console,
)

# Admission levers (serving/admission.py), shared by `serve` and `run`.
TIERS_HELP = 'tiers by API key: NAME:PRIORITY[:rate=R][:burst=B][:protected],..., e.g. "high:0:protected,low:1:rate=5"'
DEFAULT_TIER_HELP = "tier of requests with no or an unknown key (default: such requests get 401)"
MAX_QUEUE_HELP = "requests waiting for the engine beyond which unprotected tiers get 503"
OVERLOAD_HELP = "reject, or degrade (unprotected requests get --degrade-max-tokens from --degrade-queue)"
DEGRADE_QUEUE_HELP = "degrade: queue depth where degrading starts (default max-queue / 2)"
DEGRADE_TOKENS_HELP = "degrade: max_tokens of a degraded request"
DEGRADE_MODEL_HELP = "degrade: serve degraded requests in full on this smaller model size instead"
RESERVED_ROWS_HELP = "static/continuous batching: rows of the batch only protected tiers may take"
KEYS_FILE_HELP = "JSON or TOML file of API key -> tier (or set SERVELAB_API_KEYS to that JSON)"


# Config fields whose flag has another name (servelab/layers.py: a flag given wins).
LOAD_FLAGS = {"duration_s": "duration", "warmup_s": "warmup", "think_time_s": "think_time",
              "trace_start_s": "trace_start"}
PROFILE_FLAGS = {"gpu": "gpu_sampling", "torch_profile_s": "torch_profile", "device_indices": "gpu_devices"}


def _check_semantic(cfg) -> None:
    """The semantic cache's packages are optional: asking for it without them is one line."""
    if cfg.semantic_cache:
        from serving.semantic import missing_packages
        from servelab.errors import UserError

        problem = missing_packages()
        if problem:
            raise UserError(problem)


@app.command()
def serve(
    ctx: typer.Context,
    config: ConfigOpt = None,
    host: Annotated[str, typer.Option(help="address to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port; 0 picks a free one")] = 8000,
    model: Annotated[str, typer.Option(help="model size: tiny, small, base")] = "small",
    device: Annotated[str, typer.Option(help="cpu or cuda")] = "cpu",
    precision: Annotated[str, typer.Option(help="fp32, bf16, fp16, int8")] = "fp32",
    threads: Annotated[int, typer.Option(help="torch intra-op threads")] = 1,
    calibration: Annotated[bool, typer.Option(help="known-timing mode, no model")] = False,
    calib_ttft_ms: Annotated[float, typer.Option(help="calibration TTFT")] = 50.0,
    calib_itl_ms: Annotated[float, typer.Option(help="calibration inter-chunk gap")] = 10.0,
    calib_log: Annotated[str | None, typer.Option(help="calibration: log when each chunk was written "
                                                  "(JSON lines; `servelab calibrate --server-log`)")] = None,
    batching: Annotated[str, typer.Option(help="none, static or continuous")] = "none",
    max_batch_size: Annotated[int, typer.Option(help="sequences decoded together")] = 8,
    max_wait_ms: Annotated[float, typer.Option(help="static batching: wait to fill a batch")] = 5.0,
    exact_cache: Annotated[bool, typer.Option(help="exact result cache (deterministic requests)")] = False,
    merge_inflight: Annotated[bool, typer.Option(help="merge identical in-flight requests")] = False,
    semantic_cache: Annotated[bool, typer.Option(help="semantic cache: answer prompts that mean the same "
                                                 "(deterministic requests)")] = False,
    semantic_threshold: Annotated[float, typer.Option(help="semantic cache: least cosine similarity of a hit")] = 0.9,
    semantic_cache_size: Annotated[int, typer.Option(help="semantic cache: entries kept (LRU)")] = 1024,
    prefix_cache: Annotated[bool, typer.Option(help="reuse the K/V of shared prompt prefixes")] = False,
    prefix_block: Annotated[int, typer.Option(help="prefix reuse: tokens per block")] = 16,
    prefix_cache_tokens: Annotated[int, typer.Option(help="prefix reuse: tokens of K/V kept (LRU)")] = 8192,
    replicas: Annotated[int, typer.Option(help="server processes behind an HAProxy front (needs haproxy)")] = 1,
    balance: Annotated[str, typer.Option(help="replicas: leastconn or roundrobin")] = "leastconn",
    tiers: Annotated[str | None, typer.Option(rich_help_panel="Admission", help=TIERS_HELP)] = None,
    default_tier: Annotated[str | None, typer.Option(rich_help_panel="Admission", help=DEFAULT_TIER_HELP)] = None,
    max_queue: Annotated[int | None, typer.Option(rich_help_panel="Admission", help=MAX_QUEUE_HELP)] = None,
    overload: Annotated[str, typer.Option(rich_help_panel="Admission", help=OVERLOAD_HELP)] = "reject",
    degrade_queue: Annotated[int | None, typer.Option(rich_help_panel="Admission", help=DEGRADE_QUEUE_HELP)] = None,
    degrade_max_tokens: Annotated[int, typer.Option(rich_help_panel="Admission", help=DEGRADE_TOKENS_HELP)] = 16,
    degrade_model: Annotated[str | None, typer.Option(rich_help_panel="Admission", help=DEGRADE_MODEL_HELP)] = None,
    reserved_rows: Annotated[int, typer.Option(rich_help_panel="Admission", help=RESERVED_ROWS_HELP)] = 0,
    api_keys_file: Annotated[str | None, typer.Option(rich_help_panel="Admission", help=KEYS_FILE_HELP)] = None,
) -> None:
    """Serve the built-in OpenAI-compatible reference server.

    Example: servelab serve --port 0 --model small --batching continuous --precision int8

    Replicas: servelab serve --port 8000 --replicas 2 --threads 1

    Known timing: servelab serve --port 8100 --calibration --calib-log /tmp/calib.jsonl

    Tiers: SERVELAB_API_KEYS='{"sk-a": "high"}' servelab serve --tiers "high:0:protected,low:1:rate=5"
    --default-tier low --max-queue 16
    """
    from servelab.admission_flags import admission_fields
    from servelab.config import ServerConfig
    from servelab.errors import UserError

    from servelab import layers

    kwargs = dict(host=host, port=port, model=model, device=device, precision=precision,
                  threads=threads, calibration=calibration, calib_ttft_ms=calib_ttft_ms,
                  calib_itl_ms=calib_itl_ms, calib_log=calib_log, batching=batching,
                  max_batch_size=max_batch_size, max_wait_ms=max_wait_ms,
                  exact_cache=exact_cache, merge_inflight=merge_inflight, semantic_cache=semantic_cache,
                  semantic_threshold=semantic_threshold, semantic_cache_size=semantic_cache_size,
                  prefix_cache=prefix_cache, prefix_block=prefix_block, prefix_cache_tokens=prefix_cache_tokens,
                  replicas=replicas, balance=balance,
                  **admission_fields(tiers, default_tier, max_queue, overload, degrade_queue,
                                     degrade_max_tokens, degrade_model, reserved_rows, api_keys_file))
    layer = layers.layered(config, os.environ, serve=True)["server"]
    cfg = ServerConfig(**layers.fill(kwargs, layer, layers.given_by(ctx)))
    if cfg.calib_log and not cfg.calibration:
        raise UserError("--calib-log needs --calibration (only the known-timing mode writes that log)")
    _check_semantic(cfg)
    if cfg.replicas > 1:
        from servelab.replicas import serve_replicas

        serve_replicas(cfg)
        return
    from serving.server import run_server

    try:
        run_server(cfg)
    except ValueError as exc:  # a setup the model cannot build, e.g. fp16 on cpu
        raise UserError(str(exc)) from None


@app.command()
def run(
    ctx: typer.Context,
    config: ConfigOpt = None,
    target: Annotated[str, typer.Option(help="'builtin' or an OpenAI-compatible base URL")] = "builtin",
    users: Annotated[int | None, typer.Option(rich_help_panel="Load", help="closed loop: concurrent users")] = None,
    rate: Annotated[float | None, typer.Option(rich_help_panel="Load", help="open loop: requests per second")] = None,
    arrival: Annotated[str | None, typer.Option(rich_help_panel="Traffic shape", 
        help="open loop: poisson, constant, gamma, ramp, steps, trace (default: trace with --trace, else poisson)")] = None,
    burstiness: Annotated[float, typer.Option(rich_help_panel="Traffic shape", help="gamma arrivals: shape k, CV^2 = 1/k (1 = Poisson)")] = 1.0,
    rate_end: Annotated[float | None, typer.Option(rich_help_panel="Traffic shape", help="ramp arrivals: req/s at the end of the step")] = None,
    rate_steps: Annotated[str | None, typer.Option(rich_help_panel="Traffic shape", help='steps arrivals: "rate:seconds,...", e.g. 10:30,40:30')] = None,
    think_time: Annotated[float, typer.Option(rich_help_panel="Traffic shape", help="closed loop: seconds between a user's requests")] = 0.0,
    trace: Annotated[str | None, typer.Option(rich_help_panel="Traffic shape", help="Azure CSV, Mooncake JSONL or BurstGPT CSV trace")] = None,
    trace_format: Annotated[str, typer.Option(rich_help_panel="Traffic shape", help="auto, azure, mooncake, burstgpt")] = "auto",
    time_scale: Annotated[float, typer.Option(rich_help_panel="Traffic shape", help="trace: speed-up, 60 replays an hour in a minute")] = 1.0,
    trace_start: Annotated[float, typer.Option(rich_help_panel="Traffic shape", help="trace: skip this many trace seconds")] = 0.0,
    dataset: Annotated[str | None, typer.Option(rich_help_panel="Traffic shape", 
        help="JSONL prompts to send: ShareGPT conversations or {\"prompt\": ...} rows")] = None,
    workload: Annotated[str | None, typer.Option(rich_help_panel="Traffic shape", 
        help="lengths: fixed, uniform, normal, lognormal, trace, dataset (default: from --dataset/--trace)")] = None,
    length_cv: Annotated[float, typer.Option(rich_help_panel="Traffic shape", help="uniform/normal/lognormal: std / mean of lengths")] = 0.5,
    max_context: Annotated[int, typer.Option(rich_help_panel="Traffic shape", help="cap on prompt + output tokens per request")] = 2048,
    output_cap: Annotated[int | None, typer.Option(rich_help_panel="Traffic shape", help="cap on output tokens per request (any workload)")] = None,
    calibration: Annotated[bool, typer.Option(rich_help_panel="Built-in server", help="built-in server: known-timing mode, no model")] = False,
    calib_ttft_ms: Annotated[float, typer.Option(rich_help_panel="Built-in server", help="built-in server, calibration: TTFT")] = 50.0,
    calib_itl_ms: Annotated[float, typer.Option(rich_help_panel="Built-in server", help="built-in server, calibration: chunk gap")] = 10.0,
    duration: Annotated[float, typer.Option(rich_help_panel="Load", help="seconds of load")] = 10.0,
    max_requests: Annotated[int | None, typer.Option(rich_help_panel="Load", help="stop after this many requests")] = None,
    max_tokens: Annotated[int, typer.Option(rich_help_panel="Traffic shape", help="output tokens per request")] = 64,
    prompt_tokens: Annotated[int, typer.Option(rich_help_panel="Traffic shape", help="prompt tokens per request")] = 128,
    warmup: Annotated[float | None, typer.Option(rich_help_panel="Load", help="seconds excluded at the start (default 10%)")] = None,
    slo: Annotated[str | None, typer.Option(rich_help_panel="Load", help='e.g. "ttft_p99<=500ms,tpot_p99<=50ms"')] = None,
    model: Annotated[str, typer.Option(rich_help_panel="Built-in server", help="built-in server's model size")] = "small",
    endpoint: Annotated[str, typer.Option(rich_help_panel="Traffic shape", help="completions or chat")] = "completions",
    api: Annotated[str, typer.Option(rich_help_panel="Traffic shape",
        help="stream (SSE), nonstream (one JSON body) or job (submit to /v1/jobs, long-poll the result)")] = "stream",
    label: Annotated[str | None, typer.Option(help="a name for the run")] = None,
    batching: Annotated[str, typer.Option(rich_help_panel="Built-in server", help="built-in server: none, static or continuous")] = "none",
    max_batch_size: Annotated[int, typer.Option(rich_help_panel="Built-in server", help="built-in server: sequences decoded together")] = 8,
    max_wait_ms: Annotated[float, typer.Option(rich_help_panel="Built-in server", help="built-in server: static batch fill wait")] = 5.0,
    exact_cache: Annotated[bool, typer.Option(rich_help_panel="Built-in server", help="built-in server: exact result cache")] = False,
    merge_inflight: Annotated[bool, typer.Option(rich_help_panel="Built-in server", help="built-in server: merge identical in-flight requests")] = False,
    semantic_cache: Annotated[bool, typer.Option(rich_help_panel="Built-in server", help="built-in server: semantic cache (prompts that mean the same)")] = False,
    semantic_threshold: Annotated[float, typer.Option(rich_help_panel="Built-in server", help="built-in server: semantic cache's least cosine similarity of a hit")] = 0.9,
    semantic_cache_size: Annotated[int, typer.Option(rich_help_panel="Built-in server", help="built-in server: semantic cache entries kept (LRU)")] = 1024,
    prefix_cache: Annotated[bool, typer.Option(rich_help_panel="Built-in server", help="built-in server: reuse the K/V of shared prompt prefixes")] = False,
    prefix_block: Annotated[int, typer.Option(rich_help_panel="Built-in server", help="built-in server, prefix reuse: tokens per block")] = 16,
    prefix_cache_tokens: Annotated[int, typer.Option(rich_help_panel="Built-in server", help="built-in server, prefix reuse: tokens of K/V kept (LRU)")] = 8192,
    prefix_groups: Annotated[int, typer.Option(rich_help_panel="Traffic shape",
        help="shared prefixes (e.g. system prompts): each prompt starts with one of this many")] = 0,
    prefix_tokens: Annotated[int, typer.Option(rich_help_panel="Traffic shape", help="tokens of each shared prefix")] = 0,
    replicas: Annotated[int, typer.Option(rich_help_panel="Built-in server", help="built-in server: processes behind an HAProxy front")] = 1,
    balance: Annotated[str, typer.Option(rich_help_panel="Built-in server", help="built-in server, replicas: leastconn or roundrobin")] = "leastconn",
    threads: Annotated[int, typer.Option(rich_help_panel="Built-in server", help="built-in server: torch threads (per replica)")] = 1,
    device: Annotated[str, typer.Option(rich_help_panel="Built-in server", help="built-in server: cpu or cuda")] = "cpu",
    precision: Annotated[str, typer.Option(rich_help_panel="Built-in server",
        help="built-in server: fp32, bf16, fp16 (cuda) or int8 (cpu)")] = "fp32",
    repeat_rate: Annotated[float, typer.Option(rich_help_panel="Traffic shape", 
        help="fraction of requests repeating one of the worker's last 32 prompts")] = 0.0,
    paraphrase_rate: Annotated[float, typer.Option(rich_help_panel="Traffic shape",
        help="above 0: questions from data/paraphrases/, this fraction paraphrasing an earlier one")] = 0.0,
    gpu_sampling: Annotated[str, typer.Option(rich_help_panel="Profilers", 
        help="auto (NVML when a GPU is there), off, or simulated (CPU-only pipeline checks)")] = "auto",
    torch_profile: Annotated[float | None, typer.Option(rich_help_panel="Profilers", 
        help="seconds of PyTorch profiler window on the built-in server, after warm-up")] = None,
    gpu_devices: Annotated[str | None, typer.Option(rich_help_panel="Profilers", 
        help="GPU indices to sample, e.g. 0,1 (default: all)")] = None,
    gpu_hz: Annotated[float, typer.Option(rich_help_panel="Profilers",
        help="GPU samples per second (NVML refreshes power about every 100 ms)")] = 10.0,
    host_hz: Annotated[float, typer.Option(rich_help_panel="Profilers", help="host (CPU, RSS) samples per second")] = 2.0,
    workers: Annotated[int, typer.Option(rich_help_panel="Load", help="load-generator processes, each sending its shard")] = 1,
    tier_mix: Annotated[str | None, typer.Option(rich_help_panel="Load",
        help='share of requests per tier, e.g. "high:0.2,low:0.8"; keys from SERVELAB_API_KEYS')] = None,
    api_key_env: Annotated[str | None, typer.Option(rich_help_panel="Load",
        help="env var holding a bearer token for every request, e.g. OPENAI_API_KEY")] = None,
    tiers: Annotated[str | None, typer.Option(rich_help_panel="Built-in server", help=TIERS_HELP)] = None,
    default_tier: Annotated[str | None, typer.Option(rich_help_panel="Built-in server", help=DEFAULT_TIER_HELP)] = None,
    max_queue: Annotated[int | None, typer.Option(rich_help_panel="Built-in server", help=MAX_QUEUE_HELP)] = None,
    overload: Annotated[str, typer.Option(rich_help_panel="Built-in server", help=OVERLOAD_HELP)] = "reject",
    degrade_queue: Annotated[int | None, typer.Option(rich_help_panel="Built-in server", help=DEGRADE_QUEUE_HELP)] = None,
    degrade_max_tokens: Annotated[int, typer.Option(rich_help_panel="Built-in server", help=DEGRADE_TOKENS_HELP)] = 16,
    degrade_model: Annotated[str | None, typer.Option(rich_help_panel="Built-in server", help=DEGRADE_MODEL_HELP)] = None,
    reserved_rows: Annotated[int, typer.Option(rich_help_panel="Built-in server", help=RESERVED_ROWS_HELP)] = 0,
    api_keys_file: Annotated[str | None, typer.Option(rich_help_panel="Built-in server", help=KEYS_FILE_HELP)] = None,
    locust_master: Annotated[bool, typer.Option(rich_help_panel="Load", 
        help="run the workers under a Locust master (Locust's master/worker mode)")] = False,
    remote_workers: Annotated[int, typer.Option(rich_help_panel="Load", 
        help="also wait for this many workers from other machines (implies --locust-master)")] = 0,
    master_bind: Annotated[str, typer.Option(rich_help_panel="Load", 
        help="HOST[:PORT] the Locust master listens on (remote workers: e.g. 0.0.0.0:5557)")] = "127.0.0.1:0",
    fail_on_slo: Annotated[bool, typer.Option(rich_help_panel="Load", help="exit 1 when the SLO is missed")] = False,
    store: StoreOpt = DEFAULT_STORE,
    as_json: JsonOpt = False,
) -> None:
    """Run load against a target, store every request, print the summary.

    Example: servelab run --target builtin --rate 4 --duration 20 --slo "ttft_p99<=500ms"

    Trace replay: servelab run --trace data/traces/AzureLLMInferenceTrace_conv.csv --time-scale 60 --duration 60

    Real prompts: servelab run --dataset data/datasets/sample_sharegpt.jsonl --rate 2 --duration 20

    From a file: servelab run --config setup.yaml --duration 30 (flags given override the file)
    """
    from servelab import layers
    from servelab.admission_flags import admission_fields, parse_mix
    from servelab.config import RunConfig, SamplerConfig, ServerConfig
    from servelab.errors import UserError
    from servelab.load_flags import build_load

    given = layers.given_by(ctx)
    layer = layers.layered(config, os.environ)
    lo = dict(layer["load"])
    mode = lo.pop("mode", None)
    users, rate, arrival, workload = (v if given(k) else lo.pop(k, v) for k, v in
                                      (("users", users), ("rate", rate), ("arrival", arrival), ("workload", workload)))
    trace = trace if given("trace") else lo.pop("trace_path", trace)
    dataset = dataset if given("dataset") else lo.pop("dataset_path", dataset)
    if not given("rate_steps") and "rate_steps" in lo:
        rate_steps = ",".join(f"{r}:{t}" for r, t in lo.pop("rate_steps") or [])
    fields = dict(
        burstiness=burstiness, rate_end=rate_end,
        think_time_s=think_time, trace_format=trace_format, time_scale=time_scale,
        trace_start_s=trace_start, length_cv=length_cv, max_context=max_context, output_cap=output_cap, duration_s=duration,
        max_requests=max_requests, max_tokens=max_tokens, prompt_tokens=prompt_tokens, warmup_s=warmup,
        endpoint=endpoint, repeat_rate=repeat_rate, paraphrase_rate=paraphrase_rate,
        prefix_groups=prefix_groups, prefix_tokens=prefix_tokens, api=api,
        tier_mix=parse_mix(tier_mix), api_key_env=api_key_env,
    )
    load = build_load(users, rate, arrival, trace, workload, rate_steps, dataset=dataset,
                      **layers.fill(fields, lo, given, LOAD_FLAGS))
    if mode is not None and mode != load.mode:
        raise UserError(f"config: load.mode {mode!r} disagrees with the load given "
                        f"({'a rate' if load.mode == 'open' else 'users'}: {load.mode} loop)")
    server_kw = dict(model=model, batching=batching, max_batch_size=max_batch_size,
                     max_wait_ms=max_wait_ms, calibration=calibration,
                     calib_ttft_ms=calib_ttft_ms, calib_itl_ms=calib_itl_ms,
                     exact_cache=exact_cache, merge_inflight=merge_inflight, semantic_cache=semantic_cache,
                     semantic_threshold=semantic_threshold, semantic_cache_size=semantic_cache_size,
                     prefix_cache=prefix_cache, prefix_block=prefix_block, prefix_cache_tokens=prefix_cache_tokens,
                     replicas=replicas, balance=balance, threads=threads, device=device, precision=precision,
                     **admission_fields(tiers, default_tier, max_queue, overload, degrade_queue,
                                        degrade_max_tokens, degrade_model, reserved_rows, api_keys_file))
    server = ServerConfig(**layers.fill(server_kw, layer["server"], given))
    profile_kw = dict(gpu=gpu_sampling, torch_profile_s=torch_profile, device_indices=parse_indices(gpu_devices),
                      gpu_hz=gpu_hz, host_hz=host_hz)
    profile = SamplerConfig(**layers.fill(profile_kw, layer["profile"], given, PROFILE_FLAGS))
    top = layers.fill(dict(target=target, label=label, slo=slo, workers=workers, locust_master=locust_master,
                           remote_workers=remote_workers, master_bind=master_bind), layer["run"], given)
    if isinstance(top.get("slo"), str) or top.get("slo") is None:
        top["slo"] = parse_slo_flag(top.get("slo")) or []
    if top["target"] == "builtin":
        _check_semantic(server)
    cfg = RunConfig(load=load, server=server, profile=profile, **top)
    if fail_on_slo and not cfg.slo:
        raise UserError("--fail-on-slo needs an SLO (--slo or slo: in --config)")
    summary = _execute(cfg, store, quiet=as_json)
    if as_json:
        print(json.dumps(summary))
    else:
        from servelab.render import print_summary

        print_summary(stdout_console(), summary)
    if fail_on_slo and summary.get("slo_met") is not True:
        raise typer.Exit(1)  # missed, or nothing measured to judge it by


def _execute(cfg, store: str, quiet: bool) -> dict:
    from servelab.progress import RunProgress
    from servelab.results import run_summary
    from servelab.runner import execute_run

    with RunProgress(stderr_console(), cfg.load.duration_s) as progress:
        run_id = execute_run(cfg, store, on_progress=progress.update)
    if not quiet:
        stderr_console().print(f"run {run_id} stored in {store}")
    return run_summary(store, run_id)
