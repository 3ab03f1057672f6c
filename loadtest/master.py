"""The Locust master of a distributed step: `python -m loadtest.master --spec SPEC.json --workers N`.

Locust's own master/worker mode (ZeroMQ, heartbeats, user dispatch) carries a servelab step
across processes and machines. Workers are `python -m loadtest.worker --master HOST:PORT`
(`--ship` on another machine). The master:

1. binds HOST:PORT (127.0.0.1 unless told otherwise) and waits for N workers;
2. sends each worker its spec (`servelab_spec`): shard i of N (Locust's worker index), the
   shared start time as wall-clock ns (`t0_wall_ns`, START_LEAD_S ahead), its producer name
   `w<i>`, and the load's share (closed loop: users and max_requests split as evenly as
   possible; open loop: every N-th arrival of the one schedule);
3. once every worker has warmed up and said `servelab_ready`, starts the users through
   Locust (`runner.start`: one open-loop dispatcher per worker, or the closed-loop users,
   spread by Locust's dispatcher) and prints one summed progress line every 0.5 s;
4. writes the spool of every worker that ships its records (`--ship`: not on this
   machine's disk), moved onto this machine's clock (`loadtest.shipping`); workers on this
   machine spool directly, as without a master;
5. ends when every worker has said `servelab_done` or was lost (no heartbeat), prints the
   summed `done` line and quits the workers.

Exit codes: those of `loadtest.spec`, plus EXIT_LOST (a worker disappeared mid-step: its
records up to its last shipment are kept, and the run is `interrupted`).
"""

import locust  # noqa: F401, I001 - first, on purpose: it monkey-patches the process with gevent

import argparse
import json
import logging
import signal
import sys
import time
from pathlib import Path

import gevent
from locust.env import Environment
from locust.runners import STATE_MISSING
from pydantic import ValidationError

from loadtest import spec as contract
from loadtest.shipping import clock_delta, shift_meta, shift_record
from loadtest.spec import WorkerSpec
from loadtest.spool import SpoolWriter
from loadtest.user import ClosedLoopUser, OpenLoopUser, bind
from loadtest.sharding import START_LEAD_S, shard_load

EXIT_LOST = 5
CONNECT_TIMEOUT_S = 120.0
READY_TIMEOUT_S = 120.0
PROGRESS_EVERY_S = 0.5


def user_classes() -> dict[str, type]:
    """The user classes by mode; their names are what the master and workers agree on."""
    return {"open": bind(OpenLoopUser, None), "closed": bind(ClosedLoopUser, None)}


def worker_spec(base: WorkerSpec, index: int, n: int, t0_wall_ns: int) -> dict:
    """Worker `index`'s spec: its shard of the load and the shared start."""
    load = base.load
    # Locust's dispatcher decides how many users each worker gets: disjoint id ranges, not sums.
    first_user = index * load.users if load.mode == "closed" else 0
    return {**base.model_dump(mode="json"), "producer": f"w{index}", "shard": index, "shards": n,
            "load": shard_load(load, n, index).model_dump(mode="json"), "first_user": first_user,
            "t0_ns": None, "t0_wall_ns": t0_wall_ns}


class Master:
    def __init__(self, base: WorkerSpec, n: int, host: str, port: int):
        self.base, self.n = base, n
        classes = user_classes()
        self.env = Environment(user_classes=[classes[base.load.mode]])
        self.runner = self.env.create_master_runner(host, port)
        self.ready: dict[str, dict] = {}
        self.done: dict[str, dict] = {}
        self.progress: dict[str, dict] = {}
        self.failed: tuple[int, str] | None = None
        self.spools: dict[str, SpoolWriter] = {}
        self.deltas: dict[str, int] = {}
        self.t0_master_ns: int | None = None
        self.stop = gevent.event.Event()
        for name, fn in (("servelab_ready", self._on_ready), ("servelab_failed", self._on_failed),
                         ("servelab_progress", self._on_progress), ("servelab_records", self._on_records),
                         ("servelab_done", self._on_done)):
            self.runner.register_message(name, fn)

    # --- messages from workers (run on the master's receive greenlet) -------------------

    def _on_ready(self, environment, msg, **kw) -> None:
        self.ready[msg.node_id] = msg.data

    def _on_failed(self, environment, msg, **kw) -> None:
        if self.failed is None:
            self.failed = (int(msg.data.get("code", contract.EXIT_CRASH)), str(msg.data.get("message", "")))

    def _on_progress(self, environment, msg, **kw) -> None:
        self.progress[msg.node_id] = msg.data

    def _on_done(self, environment, msg, **kw) -> None:
        self.done[msg.node_id] = msg.data

    def _on_records(self, environment, msg, **kw) -> None:
        """A shipping worker's records and lifecycle events: onto this clock, into the spool."""
        producer = msg.data["producer"]
        spool = self.spools.get(producer)
        if spool is None:
            spool = self.spools[producer] = SpoolWriter(self.base.spool_dir, producer)
        for event in msg.data.get("meta", []):
            if event.get("event") == "start" and self.t0_master_ns is not None:
                self.deltas[producer] = clock_delta(self.t0_master_ns, event["t_ns"])
            spool.write_meta(shift_meta(event, self.deltas.get(producer, 0)))
        for rec in msg.data.get("requests", []):
            spool.write_request(shift_record(rec, self.deltas.get(producer, 0)))

    # --- the step ---------------------------------------------------------------------

    def _connected(self) -> list:
        return [c for c in self.runner.clients.values() if c.state != STATE_MISSING]

    def _lost(self) -> list[str]:
        return [c.id for c in self.runner.clients.values() if c.state == STATE_MISSING and c.id not in self.done]

    def wait_for(self, predicate, timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while not predicate():
            if self.failed or self.stop.is_set():
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout_s:.0f} s waiting for {what}")
            gevent.sleep(0.05)

    def run(self) -> int:
        self.wait_for(lambda: len(self.runner.clients.ready) >= self.n, CONNECT_TIMEOUT_S,
                      f"{self.n} workers to connect ({len(self.runner.clients.ready)} did)")
        if self.stop.is_set():
            return contract.EXIT_OK
        t0_wall = time.time_ns() + round(START_LEAD_S * 1e9)
        self.t0_master_ns = time.perf_counter_ns() + (t0_wall - time.time_ns())
        for client in self.runner.clients.ready[: self.n]:
            index = self.runner.get_worker_index(client.id)
            self.runner.send_message("servelab_spec", worker_spec(self.base, index, self.n, t0_wall), client.id)
        self.wait_for(lambda: len(self.ready) >= self.n, READY_TIMEOUT_S, "the workers' warm-up requests")
        if self.failed:
            return self._fail(*self.failed)
        if self.stop.is_set():
            return contract.EXIT_OK
        load = self.base.load
        users = self.n if load.mode == "open" else load.users
        self.runner.start(users, spawn_rate=users)
        reporter = gevent.spawn(self._report)
        limit = START_LEAD_S + load.duration_s + load.drain_s + 60
        finished = lambda: len(self.done) + len(self._lost()) >= self.n  # noqa: E731
        try:
            self.wait_for(finished, limit, "the workers to finish")
            if self.stop.is_set():  # SIGTERM/SIGINT: the workers cancel (and record) what is in flight
                self.runner.send_message("servelab_abort")
                self.stop.clear()
                self.wait_for(finished, 15, "the workers to stop")
        except TimeoutError as exc:
            print(f"loadtest: warning: {exc}", file=sys.stderr, flush=True)
        reporter.kill()
        lost = self._lost()
        _print(self._summed_progress())
        _print(contract.done_line(*(sum(d.get(k, 0) for d in self.done.values()) for k in ("sent", "completed", "errors"))))
        if lost:
            print(f"loadtest: {len(lost)} worker(s) lost mid-step (no heartbeat): their records up to "
                  "the last shipment are kept", file=sys.stderr, flush=True)
            return EXIT_LOST
        return contract.EXIT_OK

    def _fail(self, code: int, message: str) -> int:
        print(message, file=sys.stderr, flush=True)
        return code

    def _summed_progress(self) -> dict:
        seen = list(self.progress.values())
        keys = ("sent", "done", "errors")
        total = {k: sum(p.get(k, 0) for p in seen) for k in keys}
        elapsed = max((p.get("elapsed_s", 0.0) for p in seen), default=0.0)
        return contract.progress_line(elapsed, self.base.load.duration_s, *total.values())

    def _report(self) -> None:
        while True:
            gevent.sleep(PROGRESS_EVERY_S)
            if self.progress:
                _print(self._summed_progress())

    def close(self) -> None:
        with_timeout = gevent.Timeout(10)
        with_timeout.start()
        try:
            self.runner.quit()
        except (gevent.Timeout, Exception):  # noqa: BLE001 - quitting must not hide the result
            pass
        finally:
            with_timeout.cancel()
        for spool in self.spools.values():
            spool.close()


def _print(obj: dict) -> None:
    try:
        sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
        sys.stdout.flush()
    except (BrokenPipeError, ValueError):
        pass


def parse_bind(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"bad --bind {text!r}: expected HOST:PORT")
    return host, int(port)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.master", description=__doc__.split("\n")[0])
    parser.add_argument("--spec", required=True, help="the step's spec JSON (a worker spec; shard fields ignored)")
    parser.add_argument("--workers", type=int, required=True, help="workers to wait for")
    parser.add_argument("--bind", default="127.0.0.1:5557", help="HOST:PORT the workers connect to")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR, format="loadtest: %(message)s")
    try:
        base = WorkerSpec.model_validate_json(Path(args.spec).read_bytes())
        host, port = parse_bind(args.bind)
        if args.workers < 1:
            raise ValueError("--workers must be at least 1")
    except ValidationError as exc:
        return _fail_line(contract.EXIT_BAD_SPEC, f"bad spec {args.spec}: {exc.errors()[0]['msg']}")
    except (OSError, ValueError) as exc:
        return _fail_line(contract.EXIT_BAD_SPEC, f"bad master arguments: {exc}")
    master = Master(base, args.workers, host, port)
    _print({"event": "listening", "host": host, "port": port})
    for sig in (signal.SIGTERM, signal.SIGINT):
        gevent.signal_handler(sig, master.stop.set)
    try:
        return master.run()
    except TimeoutError as exc:
        return _fail_line(contract.EXIT_CRASH, f"loadtest master: {exc}")
    finally:
        master.close()


def _fail_line(code: int, message: str) -> int:
    print(message, file=sys.stderr, flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
