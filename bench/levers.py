"""What batching and precision buy on the reference server, side by side in one run.

1. Batching: for none, static and continuous, step up closed-loop users against the
   built-in server (`servelab run --target builtin --users N --batching X ...` through the
   library) and report the highest output tok/s whose p99 TPOT meets the SLO, and the
   continuous/none ratio of those maxima.
2. Precision: decode step time at batch 1 (direct model timing, no server) for every model
   size in fp32, bf16 and int8 (dynamic quantization of the Linear layers).

    python bench/levers.py --users 1,2,4,8,16 --duration 10 --tpot-slo-ms 50
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from servelab.config import LoadConfig, RunConfig, ServerConfig  # noqa: E402

MODES = ("none", "static", "continuous")


def one_run(store: str, mode: str, users: int, args) -> dict:
    """Summary of one closed-loop run, plus the mean server-side decode batch."""
    from servelab.results import run_summary
    from servelab.runner import execute_run
    from store import queries

    server = ServerConfig(model=args.model, batching=mode, max_batch_size=args.max_batch_size,
                          max_wait_ms=args.max_wait_ms)
    load = LoadConfig(users=users, duration_s=args.duration, max_tokens=args.max_tokens,
                      prompt_tokens=args.prompt_tokens)
    run_id = execute_run(RunConfig(target="builtin", load=load, server=server), store)
    summary = run_summary(store, run_id)
    timings = [s for s in queries.get_requests(store, run_id)["server"] if isinstance(s, dict)]
    summary["batch_mean"] = statistics.fmean(t.get("batch_mean", 1) for t in timings) if timings else None
    return summary


def batching_table(args) -> dict[str, float]:
    """Prints one line per (mode, users); returns each mode's best tok/s within the SLO."""
    best = dict.fromkeys(MODES, 0.0)
    print(f"model={args.model} max_tokens={args.max_tokens} prompt_tokens={args.prompt_tokens} "
          f"max_batch_size={args.max_batch_size} max_wait_ms={args.max_wait_ms} "
          f"SLO: tpot_p99 <= {args.tpot_slo_ms} ms")
    print(f"{'batching':<11}{'users':>6}{'out tok/s':>11}{'tpot p99':>10}{'ttft p99':>10}{'batch':>7}  SLO")
    with tempfile.TemporaryDirectory() as tmp:
        store = str(Path(tmp) / "levers.duckdb")
        for mode in MODES:
            for users in args.users:
                s = one_run(store, mode, users, args)
                tpot, ttft = s["tpot_ms"]["p99"], s["ttft_ms"]["p99"]
                ok = tpot is not None and tpot <= args.tpot_slo_ms and not s["errors"]
                if ok:
                    best[mode] = max(best[mode], s["output_tok_s"])
                batch = f"{s['batch_mean']:.1f}" if s["batch_mean"] is not None else "-"
                print(f"{mode:<11}{users:>6}{s['output_tok_s']:>11.1f}{tpot:>10.1f}{ttft:>10.0f}"
                      f"{batch:>7}  {'met' if ok else 'missed'}", flush=True)
    return best


def decode_step_ms(size: str, precision: str, prompt: int, steps: int, repeats: int = 5) -> float:
    """Best over `repeats` of the mean time of one batch-1 decode step after a prompt (the
    minimum: on a shared 2-core machine, other processes only ever add time)."""
    import torch

    from serving.model import build_model

    model = build_model(size, prompt + steps + 8, precision=precision)
    token = torch.tensor([[65]])
    times = []
    with torch.inference_mode():
        for _ in range(repeats):
            cache = model.new_cache()
            model(torch.randint(0, 256, (1, prompt)), cache, 0)
            model(token, cache, prompt)  # first decode call picks kernels
            t0 = time.perf_counter()
            for pos in range(prompt + 1, prompt + steps):
                model(token, cache, pos)
            times.append((time.perf_counter() - t0) / (steps - 1) * 1e3)
    return min(times)


def precision_table(args) -> None:
    import torch

    from serving.model import SIZES, build_model

    torch.set_num_threads(1)  # as the server runs by default (--threads 1)
    print(f"decode step at batch 1, ms (prompt {args.prompt_tokens}, {args.max_tokens} steps, 1 thread)")
    print(f"{'model':<7}{'params':>9}{'fp32':>8}{'bf16':>8}{'int8':>8}{'int8/fp32':>11}{'bf16/fp32':>11}")
    for size in SIZES:
        params = build_model(size, 16).param_count()
        ms = {p: decode_step_ms(size, p, args.prompt_tokens, args.max_tokens)
              for p in ("fp32", "bf16", "int8")}
        print(f"{size:<7}{params / 1e6:>8.1f}M{ms['fp32']:>8.2f}{ms['bf16']:>8.2f}{ms['int8']:>8.2f}"
              f"{ms['int8'] / ms['fp32']:>11.2f}{ms['bf16'] / ms['fp32']:>11.2f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="small")
    parser.add_argument("--users", type=lambda s: [int(u) for u in s.split(",")], default=[1, 2, 4, 8, 16])
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--prompt-tokens", type=int, default=128)
    parser.add_argument("--max-batch-size", type=int, default=16)
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    parser.add_argument("--tpot-slo-ms", type=float, default=50.0)
    parser.add_argument("--skip-batching", action="store_true")
    args = parser.parse_args()
    print("load average at start (1, 5, 15 min): %.2f %.2f %.2f" % os.getloadavg())
    if not args.skip_batching:
        best = batching_table(args)
        print("best tok/s within SLO: " + ", ".join(f"{m} {v:.1f}" for m, v in best.items()))
        if best["none"]:
            print(f"continuous / none = {best['continuous'] / best['none']:.2f}x, "
                  f"static / none = {best['static'] / best['none']:.2f}x")
    print()
    precision_table(args)
    print("load average at end (1, 5, 15 min): %.2f %.2f %.2f" % os.getloadavg())


if __name__ == "__main__":
    main()
