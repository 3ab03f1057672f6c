"""The `servelab` command line: thin commands over the library (`serve` and `run` are in
servelab/cli_run.py, what they share in servelab/cli_common.py).

Heavy imports (torch, duckdb, pandas, streamlit) happen inside commands so that `--help`
is instant. User mistakes become one line on stderr and exit code 2.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

# serve and run first (their module registers them on the app), so `--help` lists them first
from servelab import cli_run  # noqa: F401
from servelab import cli_sweep  # noqa: F401
from servelab import cli_gate  # noqa: F401  (registers `gate`)
from servelab.cli_common import (
    DEFAULT_STORE,
    JsonOpt,
    StoreOpt,
    app,
    parse_slo_flag,
    stderr_console,
    stdout_console,
)
from servelab.config import ENV_PREFIX


def _print_version(value: bool) -> None:
    if value:
        from servelab import __version__

        print(f"servelab {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                                help="print servelab's version and exit")] = False) -> None:
    pass


@app.command()
def calibrate(
    rates: Annotated[str, typer.Option(help="open-loop rates to try, req/s, comma-separated")] = "5,20,50,100,200",
    duration: Annotated[float, typer.Option(help="seconds of load per rate")] = 10.0,
    ttft_ms: Annotated[float, typer.Option(help="the calibration server's TTFT")] = 50.0,
    itl_ms: Annotated[float, typer.Option(help="the calibration server's chunk gap")] = 10.0,
    chunks: Annotated[int, typer.Option(help="chunks per response")] = 32,
    target: Annotated[str, typer.Option(help="'builtin' or the URL of a known-timing target")] = "builtin",
    server_log: Annotated[str | None, typer.Option(help="with --target URL: the target's calibration log")] = None,
    max_ttft_p50_ms: Annotated[float, typer.Option(help="accurate: |TTFT error| p50 at most this")] = 1.0,
    max_ttft_p99_ms: Annotated[float, typer.Option(help="accurate: |TTFT error| p99 at most this")] = 2.0,
    rate_tolerance: Annotated[float, typer.Option(help="accurate: achieved rate within this fraction")] = 0.01,
    workers: Annotated[int, typer.Option(help="load-generator processes")] = 1,
    server_cpus: Annotated[str | None, typer.Option(help="pin the built-in server to these CPUs, e.g. 0")] = None,
    client_cpus: Annotated[str | None, typer.Option(help="pin the load generator (and this command) to "
                                                    "these CPUs, e.g. 1 or 1-3")] = None,
    store: StoreOpt = DEFAULT_STORE,
    as_json: JsonOpt = False,
) -> None:
    """Measure the load generator's own error against a known-timing server, per rate.

    Example: servelab calibrate --rates 5,20,50,100 --duration 10

    One core each (Linux): servelab calibrate --server-cpus 0 --client-cpus 1 --rates 100,200,300
    """
    from servelab.calibrate import CalibrateConfig, parse_cpus, parse_rates
    from servelab.calibrate_cli import print_result, run_with_progress

    cfg = CalibrateConfig(rates=parse_rates(rates), duration_s=duration, ttft_ms=ttft_ms, itl_ms=itl_ms,
                          chunks=chunks, target=target, server_log=server_log, ttft_p50_ms=max_ttft_p50_ms,
                          ttft_p99_ms=max_ttft_p99_ms, rate_tol=rate_tolerance, workers=workers,
                          server_cpus=parse_cpus(server_cpus, "--server-cpus"),
                          client_cpus=parse_cpus(client_cpus, "--client-cpus"))
    result = run_with_progress(cfg, store, stderr_console(), quiet=as_json)
    if as_json:
        print(json.dumps(result))
    else:
        print_result(stdout_console(), result)


@app.command("runs")
def runs_cmd(store: StoreOpt = DEFAULT_STORE, as_json: JsonOpt = False) -> None:
    """List the runs in the store.

    Example: servelab runs --json
    """
    from store import ingest, queries

    ingest.recover(store)
    rows = queries.list_runs(store)
    if as_json:
        print(json.dumps(rows, default=str))
    else:
        from servelab.render import runs_table

        stdout_console().print(runs_table(rows))


@app.command()
def summary(
    run_id: Annotated[str, typer.Argument(help="the run id (see `servelab runs`)")],
    slo: Annotated[str | None, typer.Option(help="judge against this SLO instead")] = None,
    store: StoreOpt = DEFAULT_STORE,
    as_json: JsonOpt = False,
) -> None:
    """Print one run's summary: throughput, latency percentiles, SLO attainment.

    Example: servelab summary r20261125-134501-ab12 --json
    """
    from servelab.results import run_summary

    s = run_summary(store, run_id, parse_slo_flag(slo))
    if as_json:
        print(json.dumps(s))
    else:
        from servelab.render import print_summary

        print_summary(stdout_console(), s)


@app.command("export")
def export_cmd(
    run_ids: Annotated[list[str] | None, typer.Argument(help="runs to export (default: every run)")] = None,
    out: Annotated[str, typer.Option(help="a new folder for the Parquet files")] = "servelab-export",
    store: StoreOpt = DEFAULT_STORE,
    as_json: JsonOpt = False,
) -> None:
    """Export runs as Parquet (one file per table, plus the torch traces) to move them.

    Example: servelab export r20261125-134501-ab12 --out runs-h100/

    Then, on another machine: servelab import runs-h100/ --store all.duckdb
    """
    from store import exchange, ingest

    ingest.recover(store)
    manifest = exchange.export_runs(store, run_ids or None, out)
    if as_json:
        print(json.dumps({**manifest, "out": out}))
        return
    t = manifest["tables"]
    stdout_console().print(f"exported {len(manifest['runs'])} run(s) to {out}: {t['requests']} requests,"
                           f" {t['samples']} samples, {t['operators']} operators, {manifest['traces']} traces",
                           soft_wrap=True)


@app.command("import")
def import_cmd(
    folder: Annotated[str, typer.Argument(help="a folder written by `servelab export`")],
    replace: Annotated[bool, typer.Option(help="replace runs the store already has (default: skip them)")] = False,
    store: StoreOpt = DEFAULT_STORE,
    as_json: JsonOpt = False,
) -> None:
    """Import runs exported as Parquet into the store (created if missing).

    Example: servelab import runs-h100/ --store all.duckdb
    """
    from store import exchange

    result = exchange.import_runs(store, folder, replace=replace)
    if as_json:
        print(json.dumps(result))
        return
    line = f"imported {len(result['imported'])} run(s) into {store}"
    if result["skipped"]:
        line += f"; skipped {len(result['skipped'])} already there ({', '.join(result['skipped'])}; --replace to overwrite)"
    stdout_console().print(line, soft_wrap=True)


@app.command()
def dashboard(
    store: StoreOpt = DEFAULT_STORE,
    host: Annotated[str, typer.Option(help="address to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port")] = 8501,
) -> None:
    """Serve the Streamlit dashboard over the store.

    Example: servelab dashboard --store servelab.duckdb --port 8501
    """
    from servelab import extras
    from servelab.dashboard_proc import serve_dashboard

    extras.require("dashboard")
    serve_dashboard(store, host, port)


@app.command()
def demo(
    store: StoreOpt = DEFAULT_STORE,
    serve: Annotated[bool, typer.Option(envvar=f"{ENV_PREFIX}DEMO_SERVE",
                                        help="serve the dashboard afterwards")] = True,
    duration: Annotated[float, typer.Option(help="seconds of load per measured point")] = 4.0,
    port: Annotated[int, typer.Option(help="dashboard port")] = 8501,
) -> None:
    """A quick sweep of two batching levers: capacity at the SLO, the frontier, what each lever
    bought and a recommendation, then the dashboard.

    Example: servelab demo --no-serve
    """
    from servelab import extras
    from servelab.demo import run_demo

    extras.require("server")
    if serve:
        extras.require("dashboard")
    run_demo(store, duration, stdout_console(), stderr_console())
    if serve:
        from servelab.dashboard_proc import serve_dashboard

        serve_dashboard(store, "127.0.0.1", port)


# recommend, frontier and fidelity (registered here so `--help` lists them after the run commands)
from servelab import cli_cost  # noqa: E402, F401
from servelab import cli_plan  # noqa: E402, F401  (registers `plan`)


def main() -> None:
    """Entry point: runs the app and turns user mistakes into one line and exit code 2."""
    try:
        app()  # click handles its own usage errors (one line, exit 2)
    except Exception as exc:
        if not _is_user_error(exc):
            raise
        print(f"servelab: error: {_one_line(exc)}", file=sys.stderr)
        if getattr(exc, "detail", None):
            print(exc.detail, file=sys.stderr)  # type: ignore[attr-defined]
        sys.exit(2)


def _is_user_error(exc: BaseException) -> bool:
    from pydantic import ValidationError

    from servelab.errors import UserError

    kinds: tuple[type[BaseException], ...] = (UserError, ValidationError)
    # Not imported up front: `store` pulls in duckdb, pyarrow and pandas, and `--help` must
    # stay instant. A StoreError can only have been raised once store.schema is loaded.
    schema = sys.modules.get("store.schema")
    if schema is not None:
        kinds += (schema.StoreError,)
    return isinstance(exc, kinds)


def _one_line(exc: BaseException) -> str:
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err.get("loc", ()))
        msg = str(err.get("msg")).removeprefix("Value error, ")
        return f"{where}: {msg}" if where else msg
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


if __name__ == "__main__":
    main()

