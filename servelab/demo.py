"""`servelab demo`: a quick sweep of the built-in server at rising loads, with a verdict."""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.table import Table

from analysis.slo import parse_slo
from servelab.config import LoadConfig, RunConfig, ServerConfig
from servelab.progress import RunProgress
from servelab.results import run_summary
from servelab.runner import execute_run

DEMO_SLO = "ttft_p99<=1000ms,tpot_p99<=50ms"
# req/s, open loop, evenly spaced so that a short demo offers exactly these rates: below,
# near and above what the small model serves one request at a time on one CPU core.
DEMO_RATES = (1.0, 3.0, 6.0)


def demo_config(rate: float, duration_s: float) -> RunConfig:
    load = LoadConfig(mode="open", rate=rate, arrival="constant", duration_s=duration_s,
                      max_tokens=32, prompt_tokens=64, warmup_s=min(1.0, duration_s / 4), drain_s=10.0)
    return RunConfig(target="builtin", label=f"demo {rate:g} req/s", load=load,
                     server=ServerConfig(model="small"), slo=parse_slo(DEMO_SLO))


def run_demo(store: str, duration_s: float, out: Console, err: Console) -> list[dict]:
    """Runs one short open-loop run per demo rate; prints the table and the verdict."""
    summaries = []
    for i, rate in enumerate(DEMO_RATES, 1):
        cfg = demo_config(rate, duration_s)
        with RunProgress(err, duration_s, label=f"[{i}/{len(DEMO_RATES)}] {rate:g} req/s") as p:
            run_id = execute_run(cfg, store, on_progress=p.update)
        summaries.append(run_summary(store, run_id))
    out.print(_table(summaries))
    for s in summaries:
        out.print(f"  {s['label']}: run {s['run_id']}")
    _verdict(out, summaries)
    return summaries


def _table(summaries: list[dict]) -> Table:
    # Numbers are never cut (no_wrap); the two-line headers keep it within 80 columns.
    t = Table(title=f"demo: built-in server, small model, SLO {DEMO_SLO}", box=box.SIMPLE_HEAD)
    for col in ("offered\nreq/s", "served\nreq/s", "out\ntok/s", "TTFT p99\nms", "TPOT p99\nms",
                "errors", "SLO\nattain.", "SLO\nmet"):
        t.add_column(col, justify="right", no_wrap=True)
    for s in summaries:
        t.add_row(
            f"{s['steps'][0].get('rate') or 0:g}", _f(s["req_s"]),
            _f(s["output_tok_s"]), _f(s["ttft_ms"]["p99"]), _f(s["tpot_ms"]["p99"]),
            str(s["errors"]), _f(s["slo_attainment"]), "yes" if s["slo_met"] else "no",
        )
    return t


def _f(v) -> str:
    return "-" if v is None else f"{v:,.2f}"


def _verdict(out: Console, summaries: list[dict]) -> None:
    met = [s for s in summaries if s["slo_met"]]
    if met:
        best = max(met, key=lambda s: s["req_s"] or 0)
        out.print(f"highest demo load that met the SLO: {best['label']} "
                  f"({_f(best['req_s'])} req/s, {_f(best['output_tok_s'])} output tok/s)")
    else:
        out.print("no demo load met the SLO on this machine")
