"""bench/energy.py, the command that produces the GPU figures, runs end to end (simulated GPU here)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


def test_energy_bench_prints_figures_and_operators_per_batch_size(tmp_path):
    store = tmp_path / "e.duckdb"
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "energy.py"), "--model", "tiny", "--batch-sizes", "1,4",
         "--duration", "4", "--torch-profile", "0.5", "--max-tokens", "8", "--prompt-tokens", "16",
         "--gpu", "simulated", "--markdown", "--store", str(store)],
        capture_output=True, text=True, timeout=300, check=True)
    lines = out.stdout.splitlines()
    figures = [ln for ln in lines if ln.startswith("| 1 |") or ln.startswith("| 4 |")]
    assert len([ln for ln in figures if ln.endswith("| simulated |")]) == 2, out.stdout
    j_per_token = [float(ln.split("|")[6]) for ln in figures if ln.endswith("| simulated |")]
    assert all(j > 0 for j in j_per_token)
    assert "aten::mm" in out.stdout and "top operators by self time" in out.stdout
    assert "SIMULATED" in out.stderr
    assert store.exists()  # --store keeps the runs


def test_energy_bench_rejects_bad_batch_sizes():
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "energy.py"), "--batch-sizes", "one,two"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and out.stderr.strip().splitlines() == [
        "--batch-sizes: expected integers like 1,32, got 'one,two'"]
