"""`servelab calibrate`'s terminal side: one progress bar per rate, then the table."""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.table import Table

from servelab.calibrate import CalibrateConfig, calibrate
from servelab.progress import RunProgress


def run_with_progress(cfg: CalibrateConfig, store: str, err: Console, quiet: bool) -> dict:
    """Runs the calibration with a bar per rate on `err`; returns its result."""
    bars: list[RunProgress] = []
    rows: list[dict] = []

    def on_row(row: dict) -> None:
        rows.append(row)
        if bars:
            bars[-1].__exit__(None, None, None)
        if not quiet:
            err.print(f"{row['rate']:g} req/s: run {row['run_id']} stored in {store}")

    def on_progress(msg: dict) -> None:
        if str(msg.get("note", "")).startswith("sampling off"):
            return  # calibrate turns the sampler off on purpose
        if len(bars) <= len(rows):  # the first line of the next rate's run
            bars.append(RunProgress(err, cfg.duration_s, label=f"{cfg.rates[len(rows)]:g} req/s"))
        bars[-1].update(msg)

    try:
        return calibrate(cfg, store, on_progress, on_row)
    finally:
        if bars:
            bars[-1].__exit__(None, None, None)


def _f(v, digits: int = 2) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def calibration_table(result: dict) -> Table:
    """One row per rate; two-line headers so the table fits an 80-column terminal."""
    t = Table(title="client error vs the server's log, ms", box=box.SIMPLE_HEAD, padding=(0, 0, 0, 1),
              pad_edge=False, show_edge=False)
    for col in ("rate\nreq/s", "sent /\nasked", "TTFT\np50", "TTFT\np99", "ITL\np50", "ITL\np99",
                "lag\np99", "client\nCPU %", "stall\nmax", "matched\n/ ok", "accu-\nrate"):
        t.add_column(col, justify="right", no_wrap=True)
    for r in result["rows"]:
        t.add_row(f"{r['rate']:g}", _f(r.get("ratio"), 3),
                  _f(r.get("ttft_err_p50_ms")), _f(r.get("ttft_err_p99_ms")),
                  _f(r.get("itl_err_p50_ms")), _f(r.get("itl_err_p99_ms")),
                  _f(r.get("schedule_lag_p99_ms")), _f(r.get("client_cpu_pct"), 0),
                  _f(r.get("client_stall_max_ms"), 1),
                  f"{r.get('matched', 0)}/{r.get('ok', 0)}", "yes" if r.get("accurate") else "no")
    return t


def print_result(out: Console, result: dict) -> None:
    out.print(calibration_table(result))
    lim, best = result["limits"], result["max_accurate_rate"]
    rule = (f"TTFT error p50 <= {lim['ttft_p50_ms']:g} ms, p99 <= {lim['ttft_p99_ms']:g} ms, "
            f"achieved within {100 * lim['rate_tol']:g}%")
    out.print(f"maximum accurate rate: {'none of the rates' if best is None else f'{best:g} req/s'} ({rule})")
    pins = result.get("pinning") or {}
    where = [f"{who} on CPUs {','.join(map(str, cpus))}" for who, cpus in
             (("server", pins.get("server_cpus")), ("client", pins.get("client_cpus"))) if cpus is not None]
    if where:
        out.print("pinned: " + ", ".join(where))
