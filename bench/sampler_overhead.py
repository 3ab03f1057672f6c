"""What sampling costs a measured run: server throughput with the sampler off vs on.

Starts the built-in server once, then alternates intervals of closed-loop load with no
sampler and with the sampler process (host at 2 Hz + GPU at 10 Hz: NVML when present,
else the simulated device), and reports, side by side, output tokens/s, requests/s and
the server's CPU milliseconds per output token of each mode and the sampler process's own CPU (percent of one core, and of the machine).

    python bench/sampler_overhead.py --model tiny --users 2 --seconds 10 --rounds 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from servelab.config import ServerConfig  # noqa: E402
from servelab.targets import builtin_server  # noqa: E402


def closed_loop(url: str, users: int, seconds: float, max_tokens: int) -> dict:
    """`users` threads each sending one request after another for `seconds`."""
    done, tokens, lock = [0], [0], threading.Lock()
    deadline = time.monotonic() + seconds

    def user(i: int) -> None:
        with httpx.Client(base_url=url, timeout=60) as c:
            while time.monotonic() < deadline:
                r = c.post("/v1/completions", json={"prompt": f"user {i} says hello " * 4,
                                                     "max_tokens": max_tokens, "ignore_eos": True})
                if r.status_code == 200 and time.monotonic() < deadline:
                    with lock:
                        done[0] += 1
                        tokens[0] += r.json()["usage"]["completion_tokens"]

    t0 = time.monotonic()
    threads = [threading.Thread(target=user, args=(i,)) for i in range(users)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - t0
    return {"req_s": done[0] / seconds, "output_tok_s": tokens[0] / seconds, "wall_s": wall}


def start_sampler(tmp: Path, server_pid: int, gpu: str) -> subprocess.Popen:
    spec = {"spool_dir": str(tmp / f"spool-{time.time_ns()}"), "gpu": gpu, "gpu_hz": 10, "host_hz": 2,
            "pids": {"server": server_pid, "loadgen": os.getpid()}}
    path = tmp / "spec.json"
    path.write_text(json.dumps(spec))
    proc = subprocess.Popen([sys.executable, "-m", "profilers", "--spec", str(path)],
                            stdout=subprocess.PIPE, text=True)
    while '"ready"' not in (line := proc.stdout.readline()):
        if not line:
            raise SystemExit("the sampler did not start")
        print("  sampler:", line.strip(), file=sys.stderr)
    return proc


def interval(url: str, args, sampler_on: bool, server_pid: int, tmp: Path) -> dict:
    proc = start_sampler(tmp, server_pid, args.gpu) if sampler_on else None
    cpu0 = sum(psutil.Process(proc.pid).cpu_times()[:2]) if proc else 0.0
    server = psutil.Process(server_pid)
    server0 = sum(server.cpu_times()[:2])
    out = closed_loop(url, args.users, args.seconds, args.max_tokens)
    tokens = out["output_tok_s"] * args.seconds
    # Less sensitive to noisy neighbours than throughput: the server's CPU per token.
    out["server_cpu_ms_per_token"] = 1000 * (sum(server.cpu_times()[:2]) - server0) / tokens if tokens else None
    if proc:
        cpu = sum(psutil.Process(proc.pid).cpu_times()[:2]) - cpu0
        out["sampler_cpu_pct_of_core"] = 100.0 * cpu / out["wall_s"]
        out["sampler_cpu_pct_of_machine"] = out["sampler_cpu_pct_of_core"] / (os.cpu_count() or 1)
        proc.terminate()
        proc.wait(10)
        out["sample_lines"] = sum(len(p.read_text().splitlines()) for p in
                                  Path(json.loads((tmp / "spec.json").read_text())["spool_dir"]).glob("*.jsonl"))
    return out


def mean(rows: list[dict], key: str) -> float | None:
    vals = [r[key] for r in rows if key in r]
    return sum(vals) / len(vals) if vals else None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="tiny")
    p.add_argument("--users", type=int, default=2)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--max-tokens", type=int, default=32)
    p.add_argument("--gpu", default="auto", help="auto (NVML, else simulated here), simulated")
    args = p.parse_args()
    gpu = args.gpu
    if gpu == "auto":
        from profilers.device import NoGpuError, open_devices
        try:
            open_devices("auto")
        except NoGpuError:
            args.gpu = "simulated"
    runs: dict[str, list[dict]] = {"off": [], "on": []}
    with tempfile.TemporaryDirectory() as tmp, builtin_server(ServerConfig(model=args.model)) as server:
        closed_loop(server.url, args.users, 2.0, args.max_tokens)  # warm-up
        for k in range(args.rounds):
            for mode in (("off", "on") if k % 2 == 0 else ("on", "off")):  # ABBA: cancels drift
                r = interval(server.url, args, mode == "on", server.pid, Path(tmp))
                runs[mode].append(r)
                print(f"  {mode:>3}: {json.dumps({n: v if v is None else round(v, 3) for n, v in r.items()})}",
                      file=sys.stderr)
    off, on = mean(runs["off"], "output_tok_s"), mean(runs["on"], "output_tok_s")
    result = {"model": args.model, "users": args.users, "seconds": args.seconds, "rounds": args.rounds,
              "gpu": args.gpu, "cpus": os.cpu_count(),
              "off_output_tok_s": off, "on_output_tok_s": on,
              "off_req_s": mean(runs["off"], "req_s"), "on_req_s": mean(runs["on"], "req_s"),
              "throughput_change_pct": 100.0 * (on - off) / off if off else None,
              "off_server_cpu_ms_per_token": mean(runs["off"], "server_cpu_ms_per_token"),
              "on_server_cpu_ms_per_token": mean(runs["on"], "server_cpu_ms_per_token"),
              "sampler_cpu_pct_of_core": mean(runs["on"], "sampler_cpu_pct_of_core"),
              "sampler_cpu_pct_of_machine": mean(runs["on"], "sampler_cpu_pct_of_machine")}
    print(f"{'':24}{'sampling off':>14}{'sampling on':>14}")
    print(f"{'output tokens/s':24}{off:>14.1f}{on:>14.1f}")
    print(f"{'requests/s':24}{result['off_req_s']:>14.2f}{result['on_req_s']:>14.2f}")
    print(f"{'server CPU ms/token':24}{result['off_server_cpu_ms_per_token']:>14.3f}"
          f"{result['on_server_cpu_ms_per_token']:>14.3f}")
    print(f"throughput change: {result['throughput_change_pct']:+.1f}%   sampler CPU:"
          f" {result['sampler_cpu_pct_of_core']:.2f}% of one core"
          f" ({result['sampler_cpu_pct_of_machine']:.2f}% of {os.cpu_count()} cores), gpu={args.gpu}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
