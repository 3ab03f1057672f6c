"""Power, energy per output token and the top operators of the built-in server, per batch size.

For each batch size B: the built-in server with continuous batching (max batch B) under B
closed-loop users, NVML sampling of the GPU (the simulated device where there is none,
labelled so) and a PyTorch-profiler window in steady state, through the same library path
as `servelab run --device D --precision P --batching continuous --max-batch-size B
--users B --torch-profile S`. Prints, side by side, throughput, mean/peak power, J per
output token, tokens per joule, GPU-seconds per 1M tokens, utilisation and peak memory,
then each batch size's top operators by self time; `--markdown` prints the tables ready
for docs/performance.md.

On a GPU machine (the figures the profilers issue asks for):

    python bench/energy.py --device cuda --precision bf16 --model base --batch-sizes 1,32 \
        --duration 30 --torch-profile 3 --markdown

Here (CPU, simulated GPU: a check of the pipeline, not a measurement):

    python bench/energy.py --model tiny --batch-sizes 1,8 --duration 12 --torch-profile 1
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dashboard.hardware_views import TILES  # noqa: E402
from servelab.config import LoadConfig, RunConfig, SamplerConfig, ServerConfig  # noqa: E402

# (hardware key, column, format, scale): the run page's figure tiles, in the same order.
FIGURES = TILES


def one_batch(store: str, batch: int, args) -> dict:
    """The summary of one closed-loop run at batch size `batch`."""
    from servelab.results import run_summary
    from servelab.runner import execute_run

    server = ServerConfig(model=args.model, device=args.device, precision=args.precision,
                          batching="continuous", max_batch_size=batch, threads=args.threads)
    load = LoadConfig(users=batch, duration_s=args.duration, max_tokens=args.max_tokens,
                      prompt_tokens=args.prompt_tokens)
    profile = SamplerConfig(gpu=args.gpu, torch_profile_s=args.torch_profile)
    cfg = RunConfig(target="builtin", label=f"energy batch {batch}", server=server, load=load, profile=profile)

    def note(msg: dict) -> None:
        if "note" in msg:
            print(f"  batch {batch}: {msg['note']}", file=sys.stderr, flush=True)

    run_id = execute_run(cfg, store, on_progress=note)
    return run_summary(store, run_id)


def _cell(v, fmt: str, scale: float = 1) -> str:
    return "-" if v is None else fmt.format(v * scale)


def figure_rows(results: dict[int, dict]) -> tuple[list[str], list[list[str]]]:
    """Header and one row per batch size: throughput, latency and the hardware figures."""
    head = ["batch", "output tok/s", "TPOT p50 (ms)", *(col for _, col, _, _ in FIGURES), "samples"]
    rows = []
    for batch, s in results.items():
        hw = s.get("hardware") or {}
        rows.append([str(batch), _cell(s.get("output_tok_s"), "{:.1f}"),
                     _cell((s.get("tpot_ms") or {}).get("p50"), "{:.2f}"),
                     *(_cell(hw.get(k), fmt, scale) for k, _, fmt, scale in FIGURES),
                     hw.get("sample_source") or "none"])
    return head, rows


def operator_rows(results: dict[int, dict], top: int) -> tuple[list[str], list[list[str]]]:
    head = ["batch", "rank", "operator", "calls", "self CPU (ms)", "self CUDA (ms)"]
    rows = []
    for batch, s in results.items():
        for op in (s.get("operators") or [])[:top]:
            rows.append([str(batch), str(op["rank"]), op["name"], f"{op['calls']:,}",
                         _cell(op.get("self_cpu_us"), "{:.1f}", 1e-3), _cell(op.get("self_cuda_us"), "{:.1f}", 1e-3)])
    return head, rows


def show(head: list[str], rows: list[list[str]], markdown: bool) -> None:
    if markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        for r in rows:
            print("| " + " | ".join(r) + " |")
        return
    widths = [max(len(x) for x in col) for col in zip(head, *rows)]
    for r in (head, *rows):
        print("  ".join(x.ljust(w) if h == "operator" else x.rjust(w) for x, w, h in zip(r, widths, head)))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when torch sees one)")
    p.add_argument("--precision", default=None, help="fp32, bf16, fp16, int8 (default: bf16 on cuda, fp32 on cpu)")
    p.add_argument("--model", default="small", help="tiny, small or base")
    p.add_argument("--batch-sizes", default="1,8", help="comma-separated, e.g. 1,32")
    p.add_argument("--duration", type=float, default=20.0, help="seconds of load per batch size")
    p.add_argument("--torch-profile", type=float, default=2.0, help="profiler window seconds (0: none)")
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--prompt-tokens", type=int, default=128)
    p.add_argument("--threads", type=int, default=1, help="torch threads of the server (cpu)")
    p.add_argument("--gpu", default="auto", choices=["auto", "simulated", "off"],
                   help="GPU sampling: auto (NVML; the simulated device where there is no GPU), simulated, off")
    p.add_argument("--top", type=int, default=8, help="operators shown per batch size")
    p.add_argument("--store", default=None, help="keep the runs in this store (default: a temporary one)")
    p.add_argument("--markdown", action="store_true", help="print Markdown tables")
    args = p.parse_args()
    try:
        batches = [int(x) for x in args.batch_sizes.split(",") if x.strip()]
    except ValueError:
        sys.exit(f"--batch-sizes: expected integers like 1,32, got {args.batch_sizes!r}")
    if args.device is None:
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    args.precision = args.precision or ("bf16" if args.device == "cuda" else "fp32")
    args.torch_profile = args.torch_profile or None
    if args.gpu == "auto":
        from profilers.device import NoGpuError, open_devices

        try:
            open_devices("auto")
        except NoGpuError as exc:
            print(f"{exc}: using the SIMULATED device, so the GPU figures check the pipeline only",
                  file=sys.stderr)
            args.gpu = "simulated"
    results: dict[int, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        store = args.store or str(Path(tmp) / "energy.duckdb")
        for batch in batches:
            print(f"batch {batch}: {args.model} {args.device} {args.precision}, {batch} users,"
                  f" {args.duration:g} s", file=sys.stderr, flush=True)
            results[batch] = one_batch(store, batch, args)
    print(f"\n{args.model} model, {args.device} {args.precision}, continuous batching, closed loop"
          f" (users = max batch), {args.prompt_tokens} prompt / {args.max_tokens} output tokens,"
          f" {args.duration:g} s per batch size; GPU samples: {args.gpu}\n")
    show(*figure_rows(results), args.markdown)
    if any(s.get("operators") for s in results.values()):
        print(f"\ntop operators by self time (PyTorch profiler, {args.torch_profile:g} s window per batch size)\n")
        show(*operator_rows(results, args.top), args.markdown)


if __name__ == "__main__":
    main()
