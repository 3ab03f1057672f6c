"""`servelab serve` and `servelab run`: the built-in server, and one run against a target.

Their options are not written here: every field of the typed model (servelab/config.py) is
a flag, generated from the field (servelab/knobs.py), and settable from a config file and
the environment too, with one precedence (servelab/layers.py). A new knob is one line in
the model.
"""

from __future__ import annotations

import json
import os
from typing import Annotated, Any

import typer

from servelab import knobs, layers
from servelab.cli_common import (
    DEFAULT_STORE,
    ConfigOpt,
    JsonOpt,
    StoreOpt,
    app,
    stderr_console,
    stdout_console,
)


def _check_extras(cfg) -> None:
    """The built-in server and its semantic cache are extras (servelab/extras.py): asking
    for them without their packages is one line, before anything starts."""
    from servelab import extras

    extras.require("server")
    if cfg.semantic_cache:
        extras.require("semantic")


def server_config(ctx: typer.Context, config: str | None, values: dict[str, Any], environ=os.environ):
    """`serve`'s ServerConfig: flags given, over the environment, over the file, over defaults."""
    from servelab.config import ServerConfig

    flags, given = knobs.flag_sections("serve", values, layers.given_by(ctx))
    merged = layers.merge(flags, given, layers.layered(config, environ, serve=True))
    return ServerConfig(**merged["server"])


def run_config(ctx: typer.Context, config: str | None, values: dict[str, Any], environ=os.environ):
    """`run`'s RunConfig: flags given, over the environment, over the file, over defaults."""
    from servelab.cli_common import parse_slo_flag
    from servelab.config import RunConfig, SamplerConfig, ServerConfig
    from servelab.errors import UserError
    from servelab.load_flags import build_load

    flags, given = knobs.flag_sections("run", values, layers.given_by(ctx))
    merged = layers.merge(flags, given, layers.layered(config, environ))
    mode = merged["load"].pop("mode", None)
    load = build_load(merged["load"])
    if mode is not None and mode != load.mode:
        raise UserError(f"config: load.mode {mode!r} disagrees with the load given "
                        f"({'a rate' if load.mode == 'open' else 'users'}: {load.mode} loop)")
    top = merged["run"]
    if isinstance(top.get("slo"), str) or top.get("slo") is None:
        top["slo"] = parse_slo_flag(top.get("slo")) or []
    return RunConfig(load=load, server=ServerConfig(**merged["server"]),
                     profile=SamplerConfig(**merged["profile"]), **top)


@app.command()
@knobs.with_knobs("serve", defaults={"port": 8000})
def serve(ctx: typer.Context, config: ConfigOpt = None, **values: Any) -> None:
    """Serve the built-in OpenAI-compatible reference server.

    Example: servelab serve --port 0 --model small --batching continuous --precision int8

    Replicas: servelab serve --port 8000 --replicas 2 --threads 1

    Known timing: servelab serve --port 8100 --calibration --calib-log /tmp/calib.jsonl

    Tiers: SERVELAB_API_KEYS='{"sk-a": "high"}' servelab serve --tiers "high:0:protected,low:1:rate=5"
    --default-tier low --max-queue 16
    """
    from servelab.errors import UserError

    cfg = server_config(ctx, config, values)
    if cfg.calib_log and not cfg.calibration:
        raise UserError("--calib-log needs --calibration (only the known-timing mode writes that log)")
    _check_extras(cfg)
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
@knobs.with_knobs("run")
def run(ctx: typer.Context, config: ConfigOpt = None, store: StoreOpt = DEFAULT_STORE, as_json: JsonOpt = False,
        fail_on_slo: Annotated[bool, typer.Option(help="exit 1 when the SLO is missed")] = False,
        **values: Any) -> None:
    """Run load against a target, store every request, print the summary.

    Example: servelab run --target builtin --rate 4 --duration 20 --slo "ttft_p99<=500ms"

    Trace replay: servelab run --trace data/traces/AzureLLMInferenceTrace_conv.csv --time-scale 60 --duration 60

    Real prompts: servelab run --dataset data/datasets/sample_sharegpt.jsonl --rate 2 --duration 20

    From a file: servelab run --config setup.yaml --duration 30 (flags given override the file)

    Your own server: servelab run --target http://127.0.0.1:8000 --served-model Qwen/Qwen2.5-0.5B-Instruct
    --endpoint chat --rate 2 --duration 30

    An engine started for the run: servelab run --engine vllm --engine-python ~/vllm-env/bin/python
    --engine-args "--model Qwen/Qwen2.5-0.5B-Instruct --dtype bfloat16" --rate 2 --duration 30
    """
    from servelab.target_flags import refuse_builtin_flags

    cfg = run_config(ctx, config, values)
    _check_engine(cfg)
    refuse_builtin_flags(ctx, f"--engine {cfg.engine}" if cfg.engine else cfg.target)
    if fail_on_slo and not cfg.slo:
        from servelab.errors import UserError

        raise UserError("--fail-on-slo needs an SLO (--slo or slo: in --config)")
    if cfg.target == "builtin":
        _check_extras(cfg.server)
    summary = _execute(cfg, store, quiet=as_json)
    if as_json:
        print(json.dumps(summary))
    else:
        from servelab.render import print_summary

        print_summary(stdout_console(), summary)
    if fail_on_slo and summary.get("slo_met") is not True:
        raise typer.Exit(1)  # missed, or nothing measured to judge it by


def _check_engine(cfg) -> None:
    """An engine and a URL target are two ways to name the target: one line if both are given."""
    from servelab.errors import UserError

    if cfg.engine and cfg.target != "builtin":
        raise UserError("give either --target URL (a server already running) or --engine (started for the run)")
    if not cfg.engine and (cfg.engine_args or cfg.engine_python):
        raise UserError("--engine-args and --engine-python need --engine (vllm, sglang, llamacpp, tgi, "
                        "transformers or command)")


def _execute(cfg, store: str, quiet: bool) -> dict:
    from servelab.progress import RunProgress
    from servelab.results import run_summary
    from servelab.runner import execute_run

    with RunProgress(stderr_console(), cfg.load.duration_s) as progress:
        run_id = execute_run(cfg, store, on_progress=progress.update)
    if not quiet:
        stderr_console().print(f"run {run_id} stored in {store}")
    return run_summary(store, run_id)
