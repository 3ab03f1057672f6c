"""servelab/sampling.py: notices of the probes beside a step, without a server."""

from __future__ import annotations

import time

from servelab.config import SamplerConfig
from servelab.sampling import StepProbes

CLOSED = "http://127.0.0.1:9"  # the discard port: nothing listens there


def probes(tmp_path, notes, **cfg) -> StepProbes:
    return StepProbes(SamplerConfig(enabled=False, **cfg), str(tmp_path / "s.duckdb"), "r1", 0, tmp_path,
                      CLOSED, None, 2.0, -1, lambda m: "note" in m and notes.append(m["note"]))


def test_a_target_without_the_profiler_endpoint_is_one_notice(tmp_path):
    notes: list[str] = []
    p = probes(tmp_path, notes, torch_profile_s=0.2, torch_profile_at_s=0.0)
    p.start(None)
    p.relay({"progress": {}})
    time.sleep(0.3)
    p.finish()
    assert notes[0] == "sampling off (profile.enabled is false)"
    assert len(notes) == 2 and notes[1].startswith(
        "no torch profile for step 0: the target refused the torch-profiler start")


def test_notices_wait_for_the_load_and_are_dropped_when_it_never_starts(tmp_path):
    notes: list[str] = []
    p = probes(tmp_path, notes, torch_profile_s=3.0)
    p.start(None)
    assert notes == []  # held back: an unreachable target must end with one error line only
    p.finish()
    assert notes == []
    p = probes(tmp_path, notes, torch_profile_s=3.0)
    p.start(None)
    p.relay({"progress": {}})
    assert notes[-1] == ("torch-profiler window (3 s at 0 s) is longer than the step (2 s):"
                         " no torch profile for this step")


def test_the_window_starts_after_the_warm_up_by_default(tmp_path):
    notes: list[str] = []
    p = StepProbes(SamplerConfig(enabled=False, torch_profile_s=1.0), str(tmp_path / "s.duckdb"), "r1", 0,
                   tmp_path, CLOSED, None, 2.0, -1, lambda m: "note" in m and notes.append(m["note"]), warmup_s=1.5)
    p.start(None)
    p.relay({})
    assert notes[-1].startswith("torch-profiler window (1 s at 1.5 s) is longer than the step (2 s)")
