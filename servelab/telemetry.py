"""Engine telemetry: the target's Prometheus `/metrics`, scraped once a second during a step.

A thread in the CLI's process GETs `/metrics`, parses it (prometheus_client's text parser)
and appends one spool line per kept series to `metrics-engine.jsonl` (servelab/spoolfile.py),
stamped on the requests' clock (`perf_counter_ns`, CLOCK_MONOTONIC) and the wall clock; the
ingest stores them in `engine_samples`. What is kept: vLLM's `vllm:*` and SGLang's
`sglang:*` series where the target has them (requests running and waiting, KV-cache usage,
prefix-cache hits and queries, preemptions, ...), else every gauge and counter the target
exposes, less the client library's own `python_*`/`process_*` ones; histogram buckets are
left out (their sums and counts stay). A target without `/metrics` is one notice.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from servelab.spoolfile import LineWriter

PERIOD_S = 1.0
MAX_SERIES = 400  # per scrape: a target with thousands of series still costs little
ENGINE_PREFIXES = ("vllm:", "sglang:")
SKIP_PREFIXES = ("python_", "process_")


def metrics_file(producer: str = "engine") -> str:
    return f"metrics-{producer}.jsonl"


def parse(text: str) -> list[tuple[str, str, float]]:
    """(name, labels as JSON, value) of the series worth keeping in one /metrics text."""
    from prometheus_client.parser import text_string_to_metric_families

    rows = []
    for family in text_string_to_metric_families(text):
        if family.type not in ("gauge", "counter", "histogram", "summary", "unknown"):
            continue
        for s in family.samples:
            if s.name.endswith("_bucket") or s.name.endswith("_created") or s.name.startswith(SKIP_PREFIXES):
                continue
            rows.append((s.name, json.dumps(dict(sorted(s.labels.items()))), float(s.value)))
    ours = [r for r in rows if r[0].startswith(ENGINE_PREFIXES)]
    return (ours or rows)[:MAX_SERIES]


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
        try:
            import prometheus_client.parser  # noqa: F401 - the parser is an optional package
        except ImportError:
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
