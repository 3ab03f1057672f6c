"""Can the regression gate be trusted? A/A false alarms, and planted regressions caught.

Three built-in calibration servers (exact, known timings, no model) on 127.0.0.1: the
baseline (TTFT 50 ms, chunk gap 10 ms), +20% TTFT (60 ms) and +5% TTFT (52.5 ms). Three
scenarios of `--gates` gates each, `--repeats` repeats per side: A/A (baseline against
itself), +20% and +5%; printed: how often each verdict came out.

Two ways to get the repeats:
- `--fresh`: every gate measures its own repeats through `servelab gate`'s orchestration
  (servelab/gate.py, A B B A interleaving). Independent gates; costs 2 x repeats runs each.
- default (pool): `--pool` runs per server are measured once, the three servers taking
  turns (so machine drift hits all three), and each gate draws its repeats at random,
  without replacement within the gate, from those pools (A/A: 2 x repeats distinct
  baseline runs). Gates share runs, so they are not independent; far cheaper.

    python bench/gate.py --gates 20 --repeats 6 --pool 30 --duration 2
    python bench/gate.py --fresh --gates 20 --repeats 6 --duration 2
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.gate import GateOptions, judge  # noqa: E402
from analysis.gate_metrics import CATALOG, metric_value, parse_metrics  # noqa: E402
from servelab.config import LoadConfig, RunConfig, SamplerConfig, ServerConfig  # noqa: E402
from servelab.gate import GateRequest, Side, read_summaries, run_gate  # noqa: E402
from servelab.runner import execute_run  # noqa: E402
from servelab.targets import builtin_server  # noqa: E402

SERVERS = {"baseline": 50.0, "+20%": 60.0, "+5%": 52.5}
SCENARIOS = (("A/A", "baseline", "baseline"), ("+20% TTFT", "baseline", "+20%"), ("+5% TTFT", "baseline", "+5%"))


def _load(args) -> LoadConfig:
    return LoadConfig(mode="closed", users=args.users, duration_s=args.duration, max_tokens=args.max_tokens,
                      prompt_tokens=16)


@contextlib.contextmanager
def servers():
    with contextlib.ExitStack() as stack:
        yield {name: stack.enter_context(builtin_server(ServerConfig(calibration=True, calib_ttft_ms=ttft,
                                                                     calib_itl_ms=10.0))).url
               for name, ttft in SERVERS.items()}


def pools(urls: dict, args, store: str) -> dict[str, list[tuple[dict, bool]]]:
    """`args.pool` runs per server, servers in turn (order reversed every other round)."""
    out: dict[str, list] = {name: [] for name in urls}
    names = list(urls)
    for k in range(args.pool):
        for name in names if k % 2 == 0 else names[::-1]:
            cfg = RunConfig(target=urls[name], load=_load(args), profile=SamplerConfig(enabled=False))
            side = Side(name, urls[name], store=store, run_ids=[execute_run(cfg, store)])
            untrusted = read_summaries(side)
            values = {m: metric_value(side.summaries[0], m) for m in CATALOG}
            out[name].append((values, not untrusted))
        print(f"# pool round {k + 1}/{args.pool} done", file=sys.stderr, flush=True)
    return out


def _side(repeats: list[tuple[dict, bool]], specs) -> dict[str, list]:
    return {s.name: [values[s.name] for values, _ in repeats] for s in specs}


def pooled_gates(pool: dict, args) -> dict[str, Counter]:
    specs, rng = parse_metrics(None), np.random.default_rng(args.seed)
    opts = GateOptions(min_repeats=args.repeats)
    tally = {}
    for title, a_name, b_name in SCENARIOS:
        tally[title] = Counter()
        for _ in range(args.gates):
            if a_name == b_name:
                idx = rng.choice(len(pool[a_name]), 2 * args.repeats, replace=False)
                a, b = [pool[a_name][i] for i in idx[: args.repeats]], [pool[a_name][i] for i in idx[args.repeats:]]
            else:
                a = [pool[a_name][i] for i in rng.choice(len(pool[a_name]), args.repeats, replace=False)]
                b = [pool[b_name][i] for i in rng.choice(len(pool[b_name]), args.repeats, replace=False)]
            untrusted = ["self-check"] * sum(not ok for _, ok in a + b)
            v = judge(specs, _side(a, specs), _side(b, specs), opts, untrusted)
            tally[title][v.verdict] += 1
            tally[title].update(f"{m.name}: {m.verdict}" for m in v.metrics if m.verdict != "no change")
            tally[title]["untrusted gates"] += bool(untrusted)
    return tally


def fresh_gates(urls: dict, args, store: str) -> dict[str, Counter]:
    tally = {}
    for title, a_name, b_name in SCENARIOS:
        tally[title] = Counter()
        for g in range(args.gates):
            req = GateRequest(urls[a_name], urls[b_name], store, _load(args), True, parse_metrics(None),
                              args.repeats)
            result = run_gate(req)
            tally[title][result["verdict"]] += 1
            tally[title].update(f"{m['name']}: {m['verdict']}" for m in result["metrics"] if m["verdict"] != "no change")
            tally[title]["untrusted gates"] += bool(result["reasons"])
            print(f"# {title} gate {g + 1}/{args.gates}: {dict(tally[title])}", file=sys.stderr, flush=True)
    return tally


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gates", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=6)
    ap.add_argument("--pool", type=int, default=30, help="runs per server (pool mode)")
    ap.add_argument("--fresh", action="store_true", help="every gate measures its own repeats")
    ap.add_argument("--duration", type=float, default=2.0, help="seconds of load per repeat")
    ap.add_argument("--users", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--pool-file", help="pool mode: keep the measured pool here (JSON); reuse it if it exists")
    args = ap.parse_args()
    if not args.fresh and args.pool < 2 * args.repeats:
        ap.error("--pool must be at least 2 x --repeats (an A/A gate draws that many distinct runs)")
    t0 = time.monotonic()
    reuse = not args.fresh and args.pool_file and Path(args.pool_file).exists()
    with tempfile.TemporaryDirectory() as tmp, (contextlib.nullcontext({}) if reuse else servers()) as urls:
        store = str(Path(tmp) / "gate.duckdb")
        if args.fresh:
            tally = fresh_gates(urls, args, store)
        else:
            pool = json.loads(Path(args.pool_file).read_text()) if args.pool_file and Path(args.pool_file).exists() \
                else pools(urls, args, store)
            if args.pool_file:
                Path(args.pool_file).write_text(json.dumps(pool))
            tally = pooled_gates(pool, args)
    for title, counts in tally.items():
        print(json.dumps({"scenario": title, "gates": args.gates, "repeats": args.repeats,
                          "mode": "fresh" if args.fresh else f"pool of {args.pool} runs per server",
                          **{v: counts.get(v, 0) for v in ("regressed", "no change", "inconclusive")},
                          "details": {k: n for k, n in counts.items() if ":" in k or k == "untrusted gates"}}))
    print(f"# {time.monotonic() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
