"""A progress bar for a run, fed by the load generator's progress lines (on stderr)."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn


class RunProgress:
    """Context manager; `update(line)` takes the worker's `{"progress": {...}}` objects."""

    def __init__(self, console: Console, duration_s: float, label: str = "load") -> None:
        self._bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.completed:.0f}/{task.total:.0f} s"),
            TextColumn("sent {task.fields[sent]}  done {task.fields[done]}  "
                       "errors {task.fields[errors]}  in flight {task.fields[inflight]}"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self._task = self._bar.add_task(label, total=duration_s, sent=0, done=0, errors=0,
                                         inflight=0)

    def __enter__(self) -> RunProgress:
        return self  # the bar appears with the first progress line, after the target is up

    def __exit__(self, *exc) -> None:
        # Only a started bar is stopped: rich's stop() prints an empty line on a
        # non-terminal even if nothing was shown, which would garble one-line errors.
        if self._bar.live.is_started:
            self._bar.stop()

    def update(self, line: dict) -> None:
        if note := line.get("note"):
            self._bar.console.print(f"[dim]{note}[/dim]")
            return
        p = line.get("progress") or line.get("done")
        if not isinstance(p, dict):
            return
        self._bar.start()
        fields = {k: p[k] for k in ("sent", "errors", "inflight") if k in p}
        if "done" in p or "completed" in p:
            fields["done"] = p.get("done", p.get("completed"))
        elapsed = p.get("elapsed_s")
        if "completed" in p and elapsed is None:  # the final line: fill the bar
            elapsed = self._bar.tasks[0].total
        self._bar.update(self._task, completed=elapsed if elapsed is not None else None, **fields)


class SweepProgress:
    """Two bars on one display: the sweep's points (i/N, setup, load, ETA) and the current
    point's load seconds; fed by `point(event)` and the runs' progress lines (`update`)."""

    def __init__(self, console: Console, name: str, duration_s: float) -> None:
        from rich.progress import TimeRemainingColumn

        self._bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[count]}"),
            TextColumn("{task.fields[what]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self._sweep = self._bar.add_task(f"sweep {name}", total=None, count="", what="")
        self._point = self._bar.add_task("point", total=duration_s, count="", what="", visible=False)
        self._duration = duration_s
        self._notes: set[str] = set()  # every point starts a server: say each note once

    def __enter__(self) -> SweepProgress:
        return self

    def __exit__(self, *exc) -> None:
        if self._bar.live.is_started:
            self._bar.stop()

    def point(self, ev) -> None:
        """A point starts: ev is a servelab.sweep_run.PointEvent."""
        self._bar.start()
        total = max(ev.estimated_total, ev.index)
        unit = "users" if ev.closed_loop else "req/s"
        self._bar.update(self._sweep, total=total, completed=ev.index - 1,
                         count=f"point {ev.index}/~{total}",
                         what=f"{ev.setup} · {ev.load:.4g} {unit} · repeat {ev.repeat + 1}/{ev.repeats}")
        self._bar.reset(self._point, total=self._duration, visible=True, count="", what="")

    def update(self, line: dict) -> None:
        if note := line.get("note"):
            if note not in self._notes:
                self._notes.add(note)
                self._bar.console.print(f"[dim]{note}[/dim]")
            return
        p = line.get("progress") or line.get("done")
        if not isinstance(p, dict):
            return
        elapsed = p.get("elapsed_s")
        if "completed" in p and elapsed is None:
            elapsed = self._duration
        fields = f"sent {p.get('sent', 0)} done {p.get('done', p.get('completed', 0))} errors {p.get('errors', 0)}"
        self._bar.update(self._point, completed=elapsed, what=fields)
