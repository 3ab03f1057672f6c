"""What prefix reuse buys on the reference server, off vs on side by side in one run.

Traffic: every prompt is `--prompt-tokens` (512) long and starts with one of
`--prefix-groups` (4) shared prefixes of `--prefix-tokens` (448) tokens (system prompts),
then fresh tokens; greedy, exactly `--max-tokens` output tokens each. The same load runs
against the built-in server with prefix reuse off and on (`--prefix-cache`):

1. open loop, Poisson at `--rate`: client TTFT p50/p99, server prefill_ms p50/p99, the
   share of requests that reused a prefix and their mean reused tokens, TPOT p50 and
   server decode ms per output token (decode is unaffected: it should not move).
2. closed loop, `--users` users: throughput (requests/s, output tok/s) at saturation.
3. decode, in process (no server): the same prompts prefilled with and without reuse, the
   two interleaved round by round so that machine noise hits both alike, then 16 decode
   steps each: median ms per decode step. Server-side decode figures of rows 1 and 2 come
   from runs minutes apart and move with the machine's load; this one does not.

    python bench/prefix.py --rate 0.8 --users 2 --duration 60
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


def one_run(store: str, reuse: bool, open_loop: bool, args) -> dict:
    """The summary of one run, plus figures from the server's per-request timings."""
    from servelab.results import run_summary
    from servelab.runner import execute_run
    from store import queries

    server = ServerConfig(model=args.model, batching=args.batching, prefix_cache=reuse,
                          prefix_block=args.prefix_block)
    shape = {"mode": "open", "rate": args.rate} if open_loop else {"users": args.users}
    load = LoadConfig(**shape, duration_s=args.duration, max_tokens=args.max_tokens,
                      prompt_tokens=args.prompt_tokens, prefix_groups=args.prefix_groups,
                      prefix_tokens=args.prefix_tokens, seed=args.seed)
    run_id = execute_run(RunConfig(target="builtin", load=load, server=server), store)
    summary = run_summary(store, run_id)
    rows = queries.get_requests(store, run_id)
    timings = [t for s, t in zip(rows["status"], rows["server"]) if s == "ok" and isinstance(t, dict)]
    prefill = sorted(t["prefill_ms"] for t in timings)
    reused = [t.get("prefix_tokens", 0) for t in timings]
    summary.update(
        prefill_p50=statistics.median(prefill) if prefill else None,
        prefill_p99=prefill[min(len(prefill) - 1, int(0.99 * len(prefill)))] if prefill else None,
        hit_share=sum(r > 0 for r in reused) / len(reused) if reused else None,
        reused_mean=statistics.fmean(r for r in reused if r > 0) if any(reused) else 0.0,
        decode_ms_tok=statistics.median(t["decode_ms"] / max(1, t["output_tokens"] - 1) for t in timings)
        if timings else None,
    )
    return summary


def decode_check(args, rounds: int = 24) -> dict[bool, float]:
    """Median decode-step ms after a full prefill (False) and after a reused one (True)."""
    import torch

    from serving.model import build_model
    from serving.prefix import Prefiller, PrefixStore

    torch.set_num_threads(1)  # as the server runs (ServerConfig.threads)
    model = build_model(args.model, args.prompt_tokens + 64)
    gen = torch.Generator().manual_seed(args.seed)
    fresh = lambda n: torch.randint(32, 127, (n,), generator=gen).tolist()  # noqa: E731
    shared = [fresh(args.prefix_tokens) for _ in range(args.prefix_groups)]
    prefill = {False: Prefiller(model, None, "cpu"),
               True: Prefiller(model, PrefixStore(args.prefix_block, 1 << 16), "cpu")}
    cache, step_ms = model.new_cache(), {False: [], True: []}
    with torch.inference_mode():
        for r in range(rounds):
            prompt = shared[r % len(shared)] + fresh(args.prompt_tokens - args.prefix_tokens)
            for reuse in (False, True):
                (done,) = prefill[reuse].run(cache, 0, [prompt])
                token, pos = int(done.logits.argmax()), len(prompt)
                t0 = time.perf_counter()
                for _ in range(16):
                    token = int(model(torch.tensor([[token]]), cache, pos)[0, -1].argmax())
                    pos += 1
                if r >= len(shared):  # the first round of each group is a miss
                    step_ms[reuse].append((time.perf_counter() - t0) / 16 * 1e3)
    return {reuse: statistics.median(v) for reuse, v in step_ms.items()}


def fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="small")
    parser.add_argument("--batching", default="none")
    parser.add_argument("--rate", type=float, default=0.8, help="open loop: requests/s")
    parser.add_argument("--users", type=int, default=2, help="closed loop: concurrent users")
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--prompt-tokens", type=int, default=512)
    parser.add_argument("--prefix-tokens", type=int, default=448)
    parser.add_argument("--prefix-groups", type=int, default=4)
    parser.add_argument("--prefix-block", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print("load average at start (1, 5, 15 min): %.2f %.2f %.2f" % os.getloadavg())
    print(f"prefix reuse: model={args.model} batching={args.batching} prompt={args.prompt_tokens} "
          f"shared prefix={args.prefix_tokens} x {args.prefix_groups} groups block={args.prefix_block} "
          f"max_tokens={args.max_tokens} duration={args.duration}s")
    with tempfile.TemporaryDirectory() as tmp:
        store = str(Path(tmp) / "prefix.duckdb")
        print(f"\nopen loop, poisson {args.rate} req/s")
        print(f"{'reuse':<6}{'reqs':>6}{'hits':>7}{'reused':>8}{'ttft p50':>10}{'ttft p99':>10}"
              f"{'prefill p50':>13}{'prefill p99':>13}{'tpot p50':>10}{'decode/tok':>12}")
        for reuse in (False, True):
            s = one_run(store, reuse, True, args)
            print(f"{'on' if reuse else 'off':<6}{s['measured_requests']:>6}{fmt(s['hit_share'], '>7.0%')}"
                  f"{s['reused_mean']:>8.0f}{fmt(s['ttft_ms']['p50'], '>10.1f')}{fmt(s['ttft_ms']['p99'], '>10.1f')}"
                  f"{fmt(s['prefill_p50'], '>13.1f')}{fmt(s['prefill_p99'], '>13.1f')}"
                  f"{fmt(s['tpot_ms']['p50'], '>10.2f')}{fmt(s['decode_ms_tok'], '>12.2f')}", flush=True)
        print(f"\nclosed loop, {args.users} users")
        print(f"{'reuse':<6}{'reqs':>6}{'req/s':>8}{'out tok/s':>11}{'ttft p50':>10}{'prefill p50':>13}")
        for reuse in (False, True):
            s = one_run(store, reuse, False, args)
            print(f"{'on' if reuse else 'off':<6}{s['measured_requests']:>6}{fmt(s['req_s'], '>8.2f')}"
                  f"{fmt(s['output_tok_s'], '>11.1f')}{fmt(s['ttft_ms']['p50'], '>10.1f')}"
                  f"{fmt(s['prefill_p50'], '>13.1f')}", flush=True)
    step = decode_check(args)
    print(f"\ndecode in process, interleaved: {step[False]:.2f} ms/step after a full prefill, "
          f"{step[True]:.2f} ms/step after a reused one ({step[True] / step[False] - 1:+.1%})")
    print("load average at end (1, 5, 15 min): %.2f %.2f %.2f" % os.getloadavg())


if __name__ == "__main__":
    main()
