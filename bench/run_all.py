"""`make bench`: runs every benchmark under bench/ and prints their figures.

The arguments are the ones whose output is recorded in docs/performance.md. The whole set
takes about 45 minutes on a 2-core machine; `python bench/run_all.py NAME...` runs some.
"""

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
BENCHES = {
    "accuracy": ["--rates", "5,20", "--duration", "20"],
    "levers": ["--users", "1,2,4,8,16", "--duration", "20", "--tpot-slo-ms", "50"],
    "caches": ["--rate", "1.5", "--duration", "60", "--repeat-rate", "0.3", "--merge-n", "8"],
    "sampler_overhead": ["--model", "tiny", "--users", "2", "--seconds", "10", "--rounds", "4"],
    "trace_replay": ["--time-scale", "10", "--duration", "60"],
    "workers": ["--rates", "100,200,400", "--duration", "8", "--workers", "2"],
    "semantic": ["--model", "small", "--requests", "150", "--paraphrase-rate", "0.3", "--threshold", "0.9"],
    "prefix": ["--rate", "0.8", "--users", "2", "--duration", "60"],
    "replicas": ["--model", "small", "--users", "2,4,8", "--duration", "20"],
    "overload": ["--model", "tiny", "--duration", "30", "--factor", "2"],
    "energy": ["--model", "tiny", "--batch-sizes", "1,8", "--duration", "12", "--torch-profile", "1"],
    "gate": ["--gates", "20", "--repeats", "6", "--pool", "40", "--duration", "3"],
    "dashboard": ["--requests", "1000000", "--repeat", "3"],
    "dashboard_live": ["--rate", "10", "--duration", "15", "--rounds", "3", "--poll-s", "1"],
}


def main(names: list[str]) -> None:
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        sys.exit(f"unknown benchmark(s) {', '.join(unknown)}: choose from {', '.join(BENCHES)}")
    for name in names or BENCHES:
        args = BENCHES[name]
        print(f"== python bench/{name}.py {' '.join(args)}", flush=True)
        start = time.monotonic()
        subprocess.run([sys.executable, str(HERE / f"{name}.py"), *args], check=True)
        print(f"== {name}: {time.monotonic() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
