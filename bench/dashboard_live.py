"""Does an open dashboard move the load generator's figures? The same run with and without it.

Starts the built-in server in calibration mode (fixed TTFT and chunk gap, a log of when it
really wrote each chunk) and measures the same open-loop `servelab run` several times,
alternating two conditions so slow drift of the machine falls on both alike:

- quiet: nothing else reads the store;
- watched: a dashboard poller renders the Live page (dashboard/app_pages/live.py, under
  Streamlit's AppTest: the page's own reads) against the same store every `--poll-s`
  seconds for the whole run, as an open browser tab does with its refresh timer.

Per run it prints the achieved rate, the client's TTFT error against the server's log
(p50/p99: client first chunk - server's first chunk), the schedule lag p99 and the
poller's page renders; then the medians per condition side by side.

    python bench/dashboard_live.py --rate 10 --duration 15 --rounds 3 --poll-s 1
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from analysis.calibration import errors_ms, match, parse_log  # noqa: E402
from servelab.config import ServerConfig  # noqa: E402
from servelab.targets import builtin_server  # noqa: E402
from store import queries  # noqa: E402

POLLER = """
import sys, time
from streamlit.testing.v1 import AppTest
page, every, out = sys.argv[1], float(sys.argv[2]), sys.argv[3]
n = 0
while True:
    t = time.monotonic()
    AppTest.from_file(page, default_timeout=60).run()
    n += 1
    open(out, "w").write(str(n))
    time.sleep(max(0.0, every - (time.monotonic() - t)))
"""


def one_run(url: str, store: str, log: Path, args: argparse.Namespace, watched: bool, tmp: Path) -> dict:
    poller, count = None, tmp / "renders.txt"
    count.write_text("0")
    if watched:
        env = dict(os.environ, SERVELAB_STORE=store)
        poller = subprocess.Popen([sys.executable, "-c", POLLER, str(ROOT / "dashboard" / "app_pages" / "live.py"),
                                   str(args.poll_s), str(count)], env=env, cwd=ROOT,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    start = log.stat().st_size if log.exists() else 0
    try:
        out = subprocess.run(
            [sys.executable, "-m", "servelab.cli", "run", "--target", url, "--rate", str(args.rate),
             "--arrival", "constant", "--duration", str(args.duration), "--max-tokens", str(args.chunks),
             "--prompt-tokens", "16", "--warmup", "0", "--store", store, "--json"],
            capture_output=True, text=True, check=True)
    finally:
        if poller is not None:
            poller.kill()
            poller.wait()
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    with open(log) as f:
        f.seek(start)
        server = parse_log(f.read().splitlines())
    ok = [r for r in queries.get_requests(store, summary["run_id"]).to_dict("records") if r["status"] == "ok"]
    res = errors_ms(match(ok, server))
    return {"condition": "watched" if watched else "quiet", "renders": int(count.read_text() or 0),
            "achieved_rate": summary.get("achieved_rate"), "ttft_err_p50_ms": res["ttft_err_p50_ms"],
            "ttft_err_p99_ms": res["ttft_err_p99_ms"], "itl_err_p99_ms": res["itl_err_p99_ms"],
            "schedule_lag_p99_ms": (summary.get("schedule_lag_ms") or {}).get("p99"), "ok": len(ok)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, default=10.0)
    ap.add_argument("--duration", type=float, default=15.0)
    ap.add_argument("--rounds", type=int, default=3, help="runs per condition, alternating")
    ap.add_argument("--poll-s", type=float, default=1.0, help="the watched condition's page refresh period")
    ap.add_argument("--ttft-ms", type=float, default=50.0)
    ap.add_argument("--itl-ms", type=float, default=10.0)
    ap.add_argument("--chunks", type=int, default=16)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        log, store = tmp / "calib.jsonl", str(tmp / "bench.duckdb")
        cfg = ServerConfig(calibration=True, calib_ttft_ms=args.ttft_ms, calib_itl_ms=args.itl_ms, calib_log=str(log))
        with builtin_server(cfg) as server:
            for i in range(args.rounds):
                for watched in ((False, True) if i % 2 == 0 else (True, False)):
                    rows.append(one_run(server.url, store, log, args, watched, tmp))
                    print(json.dumps(rows[-1]), flush=True)
    print(f"\nrate {args.rate} req/s, {args.duration} s runs, {args.rounds} per condition, page every {args.poll_s} s; "
          "medians:")
    keys = ("achieved_rate", "ttft_err_p50_ms", "ttft_err_p99_ms", "itl_err_p99_ms", "schedule_lag_p99_ms", "renders")
    print(f"{'figure':<22}{'quiet':>12}{'watched':>12}")
    for k in keys:
        vals = {c: [r[k] for r in rows if r["condition"] == c and r[k] is not None] for c in ("quiet", "watched")}
        print(f"{k:<22}" + "".join(f"{statistics.median(v) if v else float('nan'):>12.3f}" for v in vals.values()))


if __name__ == "__main__":
    main()
