"""Child processes of a run: started so they die with their parent.

A run's children (the built-in server, the load generator) must not outlive the CLI: if the
CLI is killed with SIGKILL, Linux's PR_SET_PDEATHSIG delivers SIGTERM to each child, which
then stops cleanly and flushes its spool.
"""

from __future__ import annotations

import ctypes
import functools
import os
import signal
import subprocess
import sys

_PR_SET_PDEATHSIG = 1


def _load_prctl():
    """libc's prctl, looked up here in the parent: the child between fork and exec must not
    dlopen (another thread of the parent may have held the loader's lock at the fork)."""
    try:
        return ctypes.CDLL("libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux: children may outlive a killed CLI
        return None


_PRCTL = _load_prctl() if sys.platform.startswith("linux") else None


def _die_with_parent(parent: int) -> None:
    if _PRCTL is None:
        return
    _PRCTL(_PR_SET_PDEATHSIG, signal.SIGTERM)
    # The parent may have died between fork and prctl: then no signal will ever come.
    if os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGTERM)


def spawn(args: list[str], *, pass_fds: tuple[int, ...] = (), **kw) -> subprocess.Popen:
    """Start `python args...` as a child that receives SIGTERM when this process dies."""
    return spawn_exec([sys.executable, *args], pass_fds=pass_fds, **kw)


def spawn_exec(argv: list[str], *, pass_fds: tuple[int, ...] = (), **kw) -> subprocess.Popen:
    """Start the program `argv[0]` (any binary, e.g. haproxy) as a child that receives
    SIGTERM when this process dies (the signal setting survives exec)."""
    return subprocess.Popen(
        argv,
        preexec_fn=functools.partial(_die_with_parent, os.getpid())
        if sys.platform.startswith("linux") else None,
        pass_fds=pass_fds,
        **kw,
    )


def stop(proc: subprocess.Popen, timeout_s: float = 10.0) -> int | None:
    """SIGTERM, then SIGKILL after `timeout_s`; returns the exit code."""
    if proc.poll() is None:
        proc.terminate()
    return _reap(proc, timeout_s)


def stop_all(procs: list[subprocess.Popen], timeout_s: float = 10.0) -> None:
    """SIGTERM to every one first, so they shut down together, then reap each."""
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        _reap(proc, timeout_s)


def _reap(proc: subprocess.Popen, timeout_s: float) -> int | None:
    if proc.returncode is None:
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode
