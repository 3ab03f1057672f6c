"""A load-generator worker under a Locust master: `python -m loadtest.worker --master HOST:PORT`.

The worker connects with Locust's `WorkerRunner`, receives its spec from the master
(`servelab_spec`, see `loadtest.master`), sends its warm-up request, says
`servelab_ready`, and runs the step as a lone worker does, except that Locust's master
spawns its users. On this machine (the default) it spools into the spec's spool dir like
any worker; with `--ship` (another machine) it spools into its own `--spool-dir` and also
ships every record and lifecycle event to the master in batches every `SHIP_EVERY_S`, so
they reach the run's store; a SIGKILL loses at most the last batch's worth there (the local
spool keeps it). Progress goes to the master (`servelab_progress`), and `servelab_done` ends
the step. Imports locust: only ever imported inside a load-generator process.
"""

from __future__ import annotations

import os
import signal
import tempfile

import gevent
from gevent.event import AsyncResult
from locust.env import Environment

from loadtest import spec as contract
from loadtest.shipping import batches
from loadtest.spec import WorkerSpec
from loadtest.spool import SpoolWriter
from loadtest.step import Step

SPEC_TIMEOUT_S = 120.0
SHIP_EVERY_S = 0.2
PROGRESS_EVERY_S = 0.5


class ShippingSpool(SpoolWriter):
    """A local spool whose lines are also queued for the master."""

    def __init__(self, directory, producer: str):
        super().__init__(directory, producer)
        self.requests: list[dict] = []
        self.meta: list[dict] = []

    def write_request(self, record: dict) -> None:
        super().write_request(record)
        self.requests.append(record)

    def write_meta(self, event: dict) -> None:
        super().write_meta(event)
        self.meta.append(event)

    def take(self) -> tuple[list[dict], list[dict]]:
        reqs, meta, self.requests, self.meta = self.requests, self.meta, [], []
        return reqs, meta


def run_under_master(host: str, port: int, ship: bool, spool_dir: str | None, prepare, report) -> int:
    """Connect, get the spec, run the step. `prepare(spec)` -> (target, bodies, trace_t_s, code)
    and `report(step, env, bodies)` wire the same pieces as a lone worker (loadtest.worker)."""
    from loadtest.master import user_classes

    classes = user_classes()
    env = Environment(user_classes=list(classes.values()))
    runner = env.create_worker_runner(host, port)
    got = AsyncResult()
    abort = gevent.event.Event()
    runner.register_message("servelab_spec", lambda environment, msg, **kw: got.set(msg.data))
    runner.register_message("servelab_abort", lambda environment, msg, **kw: abort.set())
    for sig in (signal.SIGTERM, signal.SIGINT):
        gevent.signal_handler(sig, abort.set)
    try:
        data = got.get(timeout=SPEC_TIMEOUT_S)
    except gevent.Timeout:
        return _quit(runner, contract.EXIT_CRASH, f"no spec from the master at {host}:{port} "
                     f"within {SPEC_TIMEOUT_S:.0f} s")
    if ship:
        data["spool_dir"] = spool_dir or tempfile.mkdtemp(prefix=f"servelab-{data['producer']}-")
    spec = WorkerSpec.model_validate(data)
    target, bodies, trace_t_s, code, message = prepare(spec)
    if code != contract.EXIT_OK:
        runner.send_message("servelab_failed", {"code": code, "message": message})
        return _quit(runner, code, message)
    spool = (ShippingSpool if ship else SpoolWriter)(spec.spool_dir, spec.producer)
    with spool:
        step = Step(spec, target, bodies, spool)
        step.trace_t_s = trace_t_s
        for cls in classes.values():
            setattr(cls, "step", step)  # Locust instantiates the user classes itself
        report(step, env, bodies)
        shipper = gevent.spawn(_ship_loop, runner, spool, spec.producer) if ship else None
        progress = gevent.spawn(_progress_loop, runner, step)
        gevent.spawn(lambda: (abort.wait(), step.aborted.set()))
        runner.send_message("servelab_ready", {"producer": spec.producer, "ship": ship, "pid": os.getpid()})
        step.start()  # waits for the shared t0; the master spawns the users meanwhile
        step.run_to_drained()
        step.end()
        progress.kill()
        if shipper is not None:
            shipper.kill()
            assert isinstance(spool, ShippingSpool)
            _ship(runner, spool, spec.producer)
        _send_progress(runner, step)
        runner.send_message("servelab_done", {"sent": step.sent, "completed": step.ok,
                                              "errors": step.done - step.ok, "producer": spec.producer})
        gevent.sleep(0.2)  # let the last messages leave before the socket closes
    if step.fatal:
        return _quit(runner, contract.EXIT_CRASH, step.fatal)
    return _quit(runner, contract.EXIT_OK, None)


def _ship(runner, spool: ShippingSpool, producer: str) -> None:
    reqs, meta = spool.take()
    if meta and not reqs:
        runner.send_message("servelab_records", {"producer": producer, "meta": meta, "requests": []})
        return
    for i, part in enumerate(batches(reqs)):
        runner.send_message("servelab_records", {"producer": producer, "meta": meta if i == 0 else [],
                                                 "requests": part})


def _ship_loop(runner, spool: ShippingSpool, producer: str) -> None:
    while True:
        gevent.sleep(SHIP_EVERY_S)
        _ship(runner, spool, producer)


def _send_progress(runner, step: Step) -> None:
    elapsed, sent, done, errors = step.progress()
    runner.send_message("servelab_progress", {"elapsed_s": elapsed, "sent": sent, "done": done, "errors": errors})


def _progress_loop(runner, step: Step) -> None:
    while True:
        gevent.sleep(PROGRESS_EVERY_S)
        _send_progress(runner, step)


def _quit(runner, code: int, message: str | None) -> int:
    if message:
        print(message, flush=True, file=__import__("sys").stderr)
    try:
        runner.quit()
    except Exception:  # noqa: BLE001 - the master may be gone already
        pass
    return code
