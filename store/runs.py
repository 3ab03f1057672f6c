"""Run lifecycle in the store: run ids, run and step rows, spool directories, the run lock.

Owns the spool layout `<store>.spool/<run_id>/step-<k>/` and the per-run `.lock` file.
Order for a run: `with RunLock(store, run_id):` first, then `create_run`, `add_step`,
producers write into `spool_dir(...)`, `ingest_step` after each step, `finish_run` last.
Taking the lock before the run row exists is what lets `recover` tell a dead run from a
live one: a `running` row whose lock can be taken belongs to a dead process.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import secrets
import shutil
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from store.schema import StoreError, connect_write, utcnow

SPOOL_PATTERNS = ("requests-*.jsonl", "meta-*.jsonl", "samples-*.jsonl", "metrics-*.jsonl")
RUN_STATUSES = ("running", "completed", "interrupted", "failed")
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def new_run_id() -> str:
    """A sortable, unique-enough id: r<UTC date>-<UTC time>-<4 hex>, e.g. r20261125-134501-ab12."""
    return datetime.now(timezone.utc).strftime("r%Y%m%d-%H%M%S-") + secrets.token_hex(2)


def _check_run_id(run_id: str) -> str:
    # The id becomes a directory name, so it must not be able to escape the spool root.
    if not _RUN_ID.match(run_id or ""):
        raise StoreError(f"bad run id {run_id!r}: use letters, digits, '.', '_' or '-'")
    return run_id


def spool_root(path: str | Path) -> Path:
    """`<store>.spool/`: where every run's spool directory lives."""
    return Path(f"{path}.spool")


def run_spool_dir(path: str | Path, run_id: str) -> Path:
    """`<store>.spool/<run_id>/` (not created)."""
    return spool_root(path) / _check_run_id(run_id)


def spool_dir(path: str | Path, run_id: str, step: int) -> Path:
    """`<store>.spool/<run_id>/step-<k>/`, created if missing; producers write their JSONL here."""
    d = run_spool_dir(path, run_id) / f"step-{int(step)}"
    d.mkdir(parents=True, exist_ok=True)
    return d


def spool_files(step_dir: Path) -> list[Path]:
    """The spool data files in one step directory, in a stable order."""
    return sorted(p for pattern in SPOOL_PATTERNS for p in step_dir.glob(pattern))


def pending_steps(run_dir: Path) -> list[int]:
    """Steps under a run's spool directory that still hold data files."""
    steps = []
    for d in run_dir.glob("step-*"):
        suffix = d.name.removeprefix("step-")
        if d.is_dir() and suffix.isdigit() and spool_files(d):
            steps.append(int(suffix))
    return sorted(steps)


def remove_empty_spool(path: str | Path, run_id: str) -> bool:
    """Delete a run's spool directory once no data files remain in it; True if it is gone.

    Everything else in it (the lock, worker spec files) is transient and goes with it.
    """
    run_dir = run_spool_dir(path, run_id)
    if run_dir.is_dir() and not pending_steps(run_dir):
        shutil.rmtree(run_dir, ignore_errors=True)
    return not run_dir.exists()


def create_run(path: str | Path, run_id: str, config: dict[str, Any], target: str,
               label: str | None, host: dict[str, Any], version: str,
               sweep_id: str | None = None, setup: str | None = None) -> None:
    """Insert the run row with status `running`; StoreError if the id already exists.
    A sweep's point carries its sweep id and setup name (store/sweeps.py)."""
    _check_run_id(run_id)
    now = utcnow()
    with connect_write(path) as con:
        if con.execute("SELECT 1 FROM runs WHERE run_id = ?", [run_id]).fetchone():
            raise StoreError(f"run {run_id} already exists in {path}")
        con.execute(
            "INSERT INTO runs (run_id, status, created_at, started_at, target, label, config, host, version,"
            " sweep_id, setup) VALUES (?, 'running', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [run_id, now, now, target, label, json.dumps(config), json.dumps(host), version, sweep_id, setup],
        )


SETUP_COLUMNS = ("engine", "engine_version", "model", "dtype", "hardware")  # migration m007_engines


def set_setup(path: str | Path, run_id: str, columns: dict[str, Any]) -> None:
    """Fill the run's setup columns (SETUP_COLUMNS; missing keys stay NULL)."""
    with connect_write(path) as con:
        con.execute(f"UPDATE runs SET {', '.join(f'{c} = ?' for c in SETUP_COLUMNS)} WHERE run_id = ?",
                    [*(columns.get(c) for c in SETUP_COLUMNS), run_id])


def add_step(path: str | Path, run_id: str, step: int, mode: str, users: int | None,
             rate: float | None, duration_s: float, warmup_s: float) -> None:
    """Insert (or reset) one step row with status `running`; times are filled at ingest."""
    with connect_write(path) as con:
        con.execute(
            "INSERT OR REPLACE INTO steps (run_id, step, mode, users, rate, duration_s, warmup_s, status)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, 'running')",
            [run_id, int(step), mode, users, rate, duration_s, warmup_s],
        )


def finish_run(path: str | Path, run_id: str, status: str, error: str | None = None) -> None:
    """Set the run's final status and end time; remove its spool directory if it is empty."""
    if status not in RUN_STATUSES or status == "running":
        raise StoreError(f"bad final status {status!r}: use completed, interrupted or failed")
    with connect_write(path) as con:
        found = con.execute(
            "UPDATE runs SET status = ?, ended_at = ?, error = ? WHERE run_id = ? RETURNING run_id",
            [status, utcnow(), error, run_id],
        ).fetchall()
    if not found:
        raise StoreError(f"no run {run_id} in {path}")
    remove_empty_spool(path, run_id)


def set_self_check(path: str | Path, run_id: str, check: dict[str, Any]) -> None:
    """Store the run's self-check verdict (analysis/selfcheck.py) as JSON on its run row."""
    with connect_write(path) as con:
        con.execute("UPDATE runs SET self_check = ? WHERE run_id = ?", [json.dumps(check), run_id])


def try_lock(lock_path: Path, create: bool) -> int | None:
    """A file descriptor holding an exclusive flock on lock_path, or None if someone holds it."""
    flags = os.O_RDWR | (os.O_CREAT if create else 0)
    try:
        fd = os.open(lock_path, flags, 0o644)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def release_lock(fd: int) -> None:
    """Release and close a descriptor from try_lock."""
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


class RunLock:
    """Holds an exclusive flock on `<store>.spool/<run_id>/.lock` while a run is in progress.

    The kernel drops the lock when the process dies, however it dies; that is how
    `recover` knows the run's owner is gone.
    """

    def __init__(self, path: str | Path, run_id: str, timeout_s: float = 5.0):
        self.lock_path = run_spool_dir(path, run_id) / ".lock"
        self.run_id = run_id
        self.timeout_s = timeout_s
        self._fd: int | None = None

    def __enter__(self) -> RunLock:
        deadline = time.monotonic() + self.timeout_s
        while True:
            self.lock_path.parent.mkdir(parents=True, exist_ok=True)
            fd = self._create_locked()
            if fd is None:
                fd = try_lock(self.lock_path, create=False)
            if fd is not None and self._still_linked(fd):
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()}\n".encode())
                self._fd = fd
                return self
            if fd is not None:
                release_lock(fd)  # a cleanup unlinked the file under us: lock the new one
            elif time.monotonic() > deadline:
                raise StoreError(f"run {self.run_id} is locked by another process")
            time.sleep(0.05)

    def _create_locked(self) -> int | None:
        """Publish a fresh `.lock` that is already locked, so no one can take it in between.

        The file is locked under a private name and hard-linked into place (link fails
        if `.lock` exists); `recover` therefore never sees an unlocked `.lock` of a live run.
        """
        tmp = self.lock_path.with_name(f".lock.{os.getpid()}.{secrets.token_hex(4)}")
        fd = try_lock(tmp, create=True)
        assert fd is not None, "a fresh private file is never locked already"
        try:
            os.link(tmp, self.lock_path)
        except FileExistsError:
            release_lock(fd)
            return None
        except OSError:  # no hard links on this filesystem: plain create-then-lock
            release_lock(fd)
            return try_lock(self.lock_path, create=True)
        finally:
            tmp.unlink(missing_ok=True)
        return fd

    def _still_linked(self, fd: int) -> bool:
        try:
            return os.fstat(fd).st_ino == os.stat(self.lock_path).st_ino
        except FileNotFoundError:
            return False

    def fileno(self) -> int:
        """The locked descriptor, for a child process to inherit (`pass_fds`).

        flock belongs to the open file, not the process: while a child holds the inherited
        descriptor the run stays locked, even after this process exits or is killed.
        """
        if self._fd is None:
            raise StoreError(f"run {self.run_id} is not locked")
        return self._fd

    def __exit__(self, *exc_info: object) -> None:
        if self._fd is not None:
            # Close without LOCK_UN: an explicit unlock would also free a child's inherited copy.
            os.close(self._fd)
            self._fd = None


def spooled_requests(path: str | Path, run_id: str) -> dict[int, int]:
    """{step: request records spooled and not yet ingested} of a run in progress, counted from
    its spool files (plain file reads: no store connection, so it works while a writer holds
    the store; a partly written last line is counted only once it ends)."""
    out: dict[int, int] = {}
    run_dir = run_spool_dir(path, run_id)
    for step in pending_steps(run_dir) if run_dir.is_dir() else []:
        n = 0
        for f in (run_dir / f"step-{step}").glob("requests-*.jsonl"):
            try:
                n += f.read_bytes().count(b"\n")
            except OSError:
                continue  # ingested and removed between the listing and the read
        out[step] = n
    return out
