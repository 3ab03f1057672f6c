"""`servelab gate`: baseline vs candidate, a statistical verdict, and an exit code for CI.

Exit codes: 0 no regression (no change, or improved), 1 regression, 2 usage error (click's
own, and every `servelab: error:` line), 3 inconclusive. The statistics are in
analysis/gate.py, the orchestration in servelab/gate.py, one renderer per output format
(servelab/gate_junit.py, gate_markdown.py, gate_json.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from servelab.cli_common import DEFAULT_STORE, JsonOpt, StoreOpt, app, stderr_console, stdout_console

SIDE_HELP = ("a URL or 'builtin' to measure now, or stored runs: run ids, labels or sweep points "
             "SWEEP_ID:SETUP@LOAD (comma-separated) in --store, or a folder written by `servelab export`")
LOAD_FLAGS = ("users", "rate", "arrival", "duration", "warmup", "max_tokens", "prompt_tokens",
              "max_requests", "think_time", "endpoint", "api", "workload", "dataset", "seed")


@app.command()
def gate(
    ctx: typer.Context,
    baseline: Annotated[str, typer.Option(help=SIDE_HELP)],
    candidate: Annotated[str, typer.Option(help=SIDE_HELP)],
    repeats: Annotated[int, typer.Option(min=1, help="repeats per side (fewer stored runs: inconclusive)")] = 6,
    metrics: Annotated[str | None, typer.Option(help="metrics to gate, comma-separated (default: ttft_p50,"
                                                "ttft_p99,tpot_p50,tpot_p99,e2e_p99,output_tok_s,error_rate)")] = None,
    threshold: Annotated[list[str] | None, typer.Option(help="a metric's floors, METRIC=REL%[:ABS], e.g. "
                                                        "ttft_p99=5%:2 (repeatable)")] = None,
    alpha: Annotated[float, typer.Option(min=0.0001, max=0.5, help="significance level of the test")] = 0.05,
    users: Annotated[int | None, typer.Option(rich_help_panel="Load", help="closed loop: concurrent users")] = None,
    rate: Annotated[float | None, typer.Option(rich_help_panel="Load", help="open loop: requests per second")] = None,
    arrival: Annotated[str | None, typer.Option(rich_help_panel="Load", help="open loop: poisson, constant, gamma")] = None,
    duration: Annotated[float, typer.Option(rich_help_panel="Load", help="seconds of load per repeat")] = 10.0,
    warmup: Annotated[float | None, typer.Option(rich_help_panel="Load", help="seconds excluded at the start (default 10%)")] = None,
    max_tokens: Annotated[int, typer.Option(rich_help_panel="Load", help="output tokens per request")] = 64,
    prompt_tokens: Annotated[int, typer.Option(rich_help_panel="Load", help="prompt tokens per request")] = 128,
    max_requests: Annotated[int | None, typer.Option(rich_help_panel="Load", help="stop after this many requests")] = None,
    think_time: Annotated[float, typer.Option(rich_help_panel="Load", help="closed loop: seconds between a user's requests")] = 0.0,
    endpoint: Annotated[str, typer.Option(rich_help_panel="Load", help="completions or chat")] = "completions",
    api: Annotated[str, typer.Option(rich_help_panel="Load", help="stream, nonstream or job")] = "stream",
    workload: Annotated[str | None, typer.Option(rich_help_panel="Load", help="lengths: fixed, uniform, normal, lognormal, dataset")] = None,
    dataset: Annotated[str | None, typer.Option(rich_help_panel="Load", help="JSONL prompts to send")] = None,
    seed: Annotated[int, typer.Option(rich_help_panel="Load", help="seed of arrivals and prompts")] = 0,
    model: Annotated[str, typer.Option(help="'builtin' sides: the built-in server's model size")] = "small",
    label: Annotated[str, typer.Option(help="runs measured now are labelled LABEL:baseline, LABEL:candidate")] = "gate",
    sampling: Annotated[bool, typer.Option(help="record host/GPU samples beside each repeat")] = False,
    junit: Annotated[str | None, typer.Option(help="write a JUnit XML report here (one test case per metric)")] = None,
    markdown: Annotated[str | None, typer.Option(help="write a Markdown summary here, e.g. $GITHUB_STEP_SUMMARY")] = None,
    store: StoreOpt = DEFAULT_STORE,
    as_json: JsonOpt = False,
) -> None:
    """Did the candidate regress against the baseline? A statistical verdict per metric.

    Example: servelab gate --baseline http://127.0.0.1:8000 --candidate http://127.0.0.1:8001 --users 4 --duration 5

    Against a stored baseline: servelab gate --baseline baseline-export/ --candidate builtin --junit gate.xml

    Exit codes: 0 no regression, 1 regression, 2 usage error, 3 inconclusive.
    """
    from analysis.gate_metrics import apply_thresholds, parse_metrics
    from servelab import layers
    from servelab.config import ServerConfig
    from servelab.errors import UserError
    from servelab.gate import GateRequest, run_gate
    from servelab.load_flags import build_load

    try:
        specs = apply_thresholds(parse_metrics(metrics), threshold or [])
    except ValueError as exc:
        raise UserError(str(exc)) from None
    given = layers.given_by(ctx)
    load = build_load({"users": users, "rate": rate, "arrival": arrival, "workload": workload,
                       "dataset_path": dataset, "duration_s": duration, "warmup_s": warmup, "max_tokens": max_tokens,
                       "prompt_tokens": prompt_tokens, "max_requests": max_requests, "think_time_s": think_time,
                       "endpoint": endpoint, "api": api, "seed": seed})
    req = GateRequest(baseline, candidate, store, load, any(given(f) for f in LOAD_FLAGS), specs, repeats,
                      alpha, ServerConfig(model=model), label, sampling)
    err = stderr_console()
    result = run_gate(req, note=lambda line: err.print(f"gate: {line}", highlight=False))
    _write_reports(result, junit, markdown)
    if as_json:
        from servelab.gate_json import render_json

        print(render_json(result))
    else:
        from servelab.gate_markdown import verdict_table

        stdout_console().print(verdict_table(result))
    raise typer.Exit(result["exit_code"])


def _write_reports(result: dict, junit: str | None, markdown: str | None) -> None:
    """Writes the requested files; Markdown is appended (a CI step summary collects several)."""
    if junit:
        from servelab.gate_junit import render_junit

        Path(junit).write_text(render_junit(result))
    if markdown:
        from servelab.gate_markdown import render_markdown

        with open(markdown, "a", encoding="utf-8") as f:
            f.write(render_markdown(result))
