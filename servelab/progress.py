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
