"""Samplers recorded beside a run: NVML (GPU), host (psutil), on the requests' clock.

`device` (the GPU device interface: NVML or simulated), `host` (psutil), `sampler` (the
sampler process, `python -m profilers --spec SPEC.json`). The torch-profiler window lives
in the server (serving/profiler.py), since it must run in the process being profiled.
"""
