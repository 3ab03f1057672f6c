"""Engine telemetry: the target's Prometheus `/metrics`, scraped once a second during a step.

A thread in the CLI's process GETs `/metrics`, parses it (profilers/prometheus.py, which
also says which series are kept: vLLM's `vllm:*` and SGLang's `sglang:*` where the target
has them, else its gauges and counters) and appends one spool line per series to
`metrics-engine.jsonl`, stamped on the requests' clock (`perf_counter_ns`, CLOCK_MONOTONIC)
and the wall clock; the ingest stores them in `engine_samples`. A target without
`/metrics` is one notice.
"""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from profilers.prometheus import parse
from servelab.spoolfile import LineWriter

PERIOD_S = 1.0


def metrics_file(producer: str = "engine") -> str:
    return f"metrics-{producer}.jsonl"


class Scraper:
    """A daemon thread scraping `base_url/metrics` every PERIOD_S into the step's spool."""

    def __init__(self, base_url: str, spool_dir: Path, note: Callable[[str], None], period_s: float = PERIOD_S,
                 headers: dict[str, str] | None = None):
        self.url, self.spool_dir, self.note, self.period_s = base_url + "/metrics", Path(spool_dir), note, period_s
        self.headers = headers or {}  # the run's own (a gateway's key): never written anywhere
        self.done = threading.Event()
        self.scrapes = 0
        self.thread = threading.Thread(target=self._run, name="servelab-metrics", daemon=True)

    def start(self) -> None:
        from profilers.prometheus import available

        if not available():
            self.note("engine telemetry off: it needs prometheus-client (pip install prometheus-client)")
            return
        self.thread.start()

    def stop(self) -> None:
        self.done.set()
        if self.thread.is_alive():
            self.thread.join(10)

    def _run(self) -> None:
        out = LineWriter(self.spool_dir / metrics_file())
        try:
            while not self.done.is_set():
                if not self._scrape(out):
                    return
                self.done.wait(self.period_s)
        finally:
            out.close()

    def _scrape(self, out: LineWriter) -> bool:
        """One scrape; False when the target has no usable /metrics (said once)."""
        t_ns, wall_ns = time.perf_counter_ns(), time.time_ns()
        try:
            req = urllib.request.Request(self.url, headers=self.headers)
            with urllib.request.urlopen(req, timeout=max(1.0, self.period_s)) as resp:
                text = resp.read(8 << 20).decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            if self.scrapes == 0:
                self.note(f"no engine telemetry: {self.url} answered HTTP {exc.code}")
                return False
            return True
        except (urllib.error.URLError, OSError):
            return True  # a busy target may miss one scrape
        try:
            rows = parse(text)
        except (ValueError, TypeError) as exc:
            if self.scrapes == 0:
                self.note(f"no engine telemetry: {self.url} is not Prometheus text ({exc})")
                return False
            return True
        for name, labels, value in rows:
            out.write({"t_ns": t_ns, "wall_ns": wall_ns, "name": name, "labels": labels, "value": value})
        self.scrapes += 1
        return True
