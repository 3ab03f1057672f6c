"""`servelab sweep`, `sweeps` and `sweep-summary`: capacity at the SLO for several setups."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from servelab.cli_common import DEFAULT_STORE, JsonOpt, StoreOpt, app, stderr_console, stdout_console


@app.command()
def sweep(
    spec: Annotated[str | None, typer.Argument(help="sweep spec file, YAML or JSON (optional with --resume)")] = None,
    resume: Annotated[str | None, typer.Option(help="carry on an interrupted sweep: finished points are kept")] = None,
    fail_on_slo: Annotated[bool, typer.Option(help="exit 1 if a setup met the SLO at no load measured")] = False,
    points: Annotated[bool, typer.Option(help="also print every measured point")] = False,
    store: StoreOpt = DEFAULT_STORE,
    as_json: JsonOpt = False,
) -> None:
    """Measure each setup's capacity at the SLO (or a grid of loads), with repeats and intervals.

    Example: servelab sweep data/sweeps/levers-tiny.yaml

    Carry on after Ctrl-C: servelab sweep --resume s20261203-211500-ab12
    """
    from servelab.errors import UserError
    from servelab.progress import SweepProgress
    from servelab.sweep_run import SweepRunner, spec_matches
    from servelab.sweep_spec import SweepSpec, read_spec
    from servelab.sweeps import sweep_summary

    if spec is None and resume is None:
        raise UserError("give a sweep spec file, or --resume SWEEP_ID")
    if resume:
        from store import sweeps as store_sweeps

        stored = store_sweeps.get_sweep(store, resume)
        if spec is not None and not spec_matches(stored["spec"], read_spec(spec)):
            raise UserError(f"{spec} is not the spec sweep {resume} started with: resume without it")
        parsed, spec_path = SweepSpec.model_validate(stored["spec"]), stored.get("spec_path") or ""
    else:
        assert spec is not None  # checked above
        parsed, spec_path = read_spec(spec), spec
    err = stderr_console()
    runner = None
    try:
        with SweepProgress(err, parsed.name, parsed.duration_s) as progress:
            runner = SweepRunner(parsed, spec_path, store, on_point=progress.point, on_progress=progress.update)
            sweep_id = runner.run(resume)
    except KeyboardInterrupt:
        if runner is None or runner.sweep_id is None:
            raise
        err.print(f"sweep {runner.sweep_id} interrupted: its finished points are stored in {store}; "
                  f"carry on with `servelab sweep --resume {runner.sweep_id} --store {store}`", soft_wrap=True)
        raise typer.Exit(130) from None
    if not as_json:
        err.print(f"sweep {sweep_id} stored in {store}")
    _show(sweep_summary(store, sweep_id), as_json, points, fail_on_slo)


@app.command("sweeps")
def sweeps_cmd(store: StoreOpt = DEFAULT_STORE, as_json: JsonOpt = False) -> None:
    """List the sweeps in the store.

    Example: servelab sweeps --json
    """
    from servelab.sweeps import list_sweeps

    rows = list_sweeps(store)
    if as_json:
        print(json.dumps(rows, default=str))
    else:
        from servelab.render_sweep import sweeps_table

        stdout_console().print(sweeps_table(rows))


@app.command("sweep-summary")
def sweep_summary_cmd(
    sweep_id: Annotated[str, typer.Argument(help="the sweep id (see `servelab sweeps`)")],
    points: Annotated[bool, typer.Option(help="also print every measured point")] = False,
    store: StoreOpt = DEFAULT_STORE,
    as_json: JsonOpt = False,
) -> None:
    """Print a stored sweep's result: capacity per setup with its interval, and its points.

    Example: servelab sweep-summary s20261203-211500-ab12 --json
    """
    from servelab.sweeps import sweep_summary

    _show(sweep_summary(store, sweep_id), as_json, points, fail_on_slo=False)


def _show(result: dict, as_json: bool, points: bool, fail_on_slo: bool) -> None:
    if as_json:
        print(json.dumps(result))
    else:
        from servelab.render_sweep import capacity_table, points_table

        out = stdout_console()
        out.print(capacity_table(result))
        if points:
            out.print(points_table(result))
    if fail_on_slo and any(s["capacity_req_s"].get("bound") == "below" for s in result["setups"]):
        raise typer.Exit(1)
