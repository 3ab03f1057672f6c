"""The load-generator process: `python -m loadtest.worker --spec SPEC.json`.

One process, one step, one producer. It reads the spec (`loadtest.spec.WorkerSpec`), sends
one unrecorded warm-up request, then offers the load through Locust (as a library: an
`Environment` and a local runner) and spools one record per request. Lifecycle:

    users ready -> t0: meta `start` -> issue until duration_s or max_requests: meta `stop`
    -> in-flight requests get up to drain_s -> the rest are cancelled (and recorded) -> `end`

stdout: a `{"progress": {...}}` JSON line about every 0.5 s, then one `{"done": {...}}`
line (formats in `loadtest.spec`). stderr: one line per problem. Exit codes: see
`loadtest.spec`. SIGTERM/SIGINT stop issuing, cancel (and record) what is in flight,
write `end` and exit 0.
"""

import locust  # noqa: F401, I001 - first, on purpose: it monkey-patches the process with gevent

import argparse
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path

import gevent
from locust.env import Environment
from pydantic import ValidationError

from loadtest import spec as contract
from loadtest import arrivals, datasets, traces
from loadtest.client import Target
from loadtest.whole import send_request
from loadtest.prompts import BodyFactory
from loadtest.record import new_record
from loadtest.spec import WorkerSpec
from loadtest.spool import SpoolWriter
from loadtest.step import Step
from loadtest.tiers import TierPicker, keys_for
from loadtest.user import ClosedLoopUser, OpenLoopUser, bind

PROGRESS_EVERY_S = 0.5
READY_TIMEOUT_S = 60.0
WARMUP_MAX_TOKENS = 16
# A warm-up answered with one of these will be answered the same way every time: stop.
REJECTING = {400, 401, 403, 404, 405, 413, 422}


class RequestFailed(Exception):
    """What Locust's stats see for a request whose record status is not ok."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.worker", description=__doc__.split("\n")[0])
    how = parser.add_mutually_exclusive_group(required=True)
    how.add_argument("--spec", help="path of the step's spec JSON file")
    how.add_argument("--master", help="HOST:PORT of a Locust master (python -m loadtest.master) to get the spec from")
    parser.add_argument("--ship", action="store_true",
                        help="with --master, from another machine: also send every record to the master")
    parser.add_argument("--spool-dir", help="with --ship: where this machine keeps its own copy")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR, format="loadtest: %(message)s")
    if args.master:
        return _under_master(args)
    try:
        spec = WorkerSpec.model_validate_json(Path(args.spec).read_bytes())
        target = Target(spec.target_url, _api_key(spec))
        tiered = _tier_targets(spec)
        bodies, trace_t_s = _bodies(spec)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return _fail(contract.EXIT_BAD_SPEC, f"bad worker spec {args.spec}: {where}: {first['msg']}")
    except (OSError, ValueError) as exc:
        return _fail(contract.EXIT_BAD_SPEC, f"bad worker spec {args.spec}: {_one_line(exc)}")
    code, message = warm_up(next(iter(tiered.values())) if tiered else target, spec)
    if code != contract.EXIT_OK:
        return _fail(code, message or "the warm-up request failed")
    try:
        spool = SpoolWriter(spec.spool_dir, spec.producer)
    except OSError as exc:
        return _fail(contract.EXIT_CRASH, f"cannot write the spool in {spec.spool_dir}: {exc}")
    with spool:
        step = Step(spec, target, bodies, spool)
        step.trace_t_s = trace_t_s
        if tiered and spec.load.tier_mix:
            step.pick_target = TierPicker(spec.load.tier_mix, tiered, spec.load.seed, spec.producer).pick
        user_class = bind(ClosedLoopUser if spec.load.mode == "closed" else OpenLoopUser, step)
        env = Environment(user_classes=[user_class])
        step.on_record = locust_reporter(env, bodies.path)
        return run_step(step, env)


def _under_master(args) -> int:
    from loadtest.master import parse_bind
    from loadtest.remote import run_under_master

    try:
        host, port = parse_bind(args.master)
    except ValueError as exc:
        return _fail(contract.EXIT_BAD_SPEC, str(exc).replace("--bind", "--master"))

    tiered: dict[str, Target] = {}

    def prepare(spec: WorkerSpec):
        try:
            target = Target(spec.target_url, _api_key(spec))
            tiered.update(_tier_targets(spec))
            bodies, trace_t_s = _bodies(spec)
        except (OSError, ValueError) as exc:
            return None, None, None, contract.EXIT_BAD_SPEC, f"bad worker spec from the master: {_one_line(exc)}"
        code, message = warm_up(next(iter(tiered.values())) if tiered else target, spec)
        return target, bodies, trace_t_s, code, message

    def report(step: Step, env: Environment, bodies: BodyFactory) -> None:
        step.on_record = locust_reporter(env, bodies.path)
        if tiered and step.load.tier_mix:
            step.pick_target = TierPicker(step.load.tier_mix, tiered, step.load.seed, step.producer).pick

    return run_under_master(host, port, args.ship, args.spool_dir, prepare, report)


def _api_key(spec: WorkerSpec) -> str | None:
    """The bearer token, read from the environment so it is never in a file or a record."""
    name = spec.api_key_env or spec.load.api_key_env
    if name is None:
        return None
    key = os.environ.get(name)
    if not key:
        raise ValueError(f"api_key_env names {name}, which is not set")
    return key


def _tier_targets(spec: WorkerSpec) -> dict[str, Target]:
    """Tiered load: one Target (request head) per tier, each with its tier's key."""
    if not spec.load.tier_mix:
        return {}
    keys = keys_for(spec.load.tier_mix, os.environ)
    return {tier: Target(spec.target_url, key) for tier, key in keys.items()}


def _bodies(spec: WorkerSpec) -> tuple[BodyFactory, object]:
    """The body factory (lengths from the load's workload: trace rows or dataset prompts
    included) and the trace's arrival seconds (None without a trace)."""
    load = spec.load
    trace = traces.read_trace(load.trace_path, load.trace_format) if load.trace_path else None
    t_s = None if trace is None else trace.t_s
    if load.workload == "dataset" and load.dataset_path:  # prompts from the dataset; a trace may still drive arrivals
        dataset = datasets.read_dataset(load.dataset_path)
        return BodyFactory(load, spec.builtin, spec.producer, dataset), t_s
    if trace is None:
        return BodyFactory(load, spec.builtin, spec.producer), None
    first = arrivals.trace_first_row(trace.t_s, load.trace_start_s)
    return BodyFactory(load, spec.builtin, spec.producer, trace, first, spec.shard, spec.shards), t_s


def warm_up(target: Target, spec: WorkerSpec) -> tuple[int, str | None]:
    """One request shaped like the real ones (fewer output tokens), not recorded: it opens
    the server's cold paths before t0 and proves the target is there."""
    load = spec.load.model_copy(update={
        "max_tokens": min(spec.load.max_tokens, WARMUP_MAX_TOKENS), "workload": "fixed",
        "prompt_tokens": max(1, min(spec.load.prompt_tokens, spec.load.max_context - WARMUP_MAX_TOKENS))})
    bodies = BodyFactory(load, spec.builtin, spec.producer + "-warmup")
    data, prompt_tokens = bodies.next()
    rid = f"{spec.producer}-warmup"
    rec = new_record(rid, spec.producer, None, None, load.max_tokens, prompt_tokens)
    pool = target.pool(1, load.timeout_s)
    send_request(load.api, pool, target, target.head(bodies.path, rid, len(data)), data, rec, load.timeout_s)
    pool.close()
    if rec["status"] in ("conn_error", "timeout"):
        return contract.EXIT_UNREACHABLE, f"cannot reach {target.url}: {rec['error']}"
    if rec["status"] == "http_error" and rec["http_status"] in REJECTING:
        return contract.EXIT_REJECTED, (f"{target.url} rejected the warm-up request: "
                                        f"HTTP {rec['http_status']}: {_one_line(rec['error'])}")
    if rec["status"] != "ok":
        print(f"loadtest: warning: warm-up request to {target.url} failed ({rec['status']}): "
              f"{_one_line(rec['error'])}", file=sys.stderr, flush=True)
    return contract.EXIT_OK, None


def run_step(step: Step, env: Environment) -> int:
    load = step.load
    runner = env.create_local_runner()
    n = load.users if load.mode == "closed" else 1
    runner.start(n, spawn_rate=n)
    _wait_ready(step, n)
    for sig in (signal.SIGTERM, signal.SIGINT):
        gevent.signal_handler(sig, step.aborted.set)
    late_ms = (time.perf_counter_ns() - step.shared_t0_ns) / 1e6 if step.shared_t0_ns else 0.0
    if late_ms > 0:
        print(f"loadtest: warning: {step.producer} was ready {late_ms:.0f} ms after the shared t0: "
              "its first arrivals go out late (recorded as schedule lag)", file=sys.stderr, flush=True)
    step.start()
    reporter = gevent.spawn(_report_progress, step)
    step.run_to_drained()
    runner.quit()
    step.end()
    reporter.kill()
    _print(contract.progress_line(*_progress(step)))
    _print(contract.done_line(step.sent, step.ok, step.done - step.ok))
    if runner.cpu_warning_emitted:
        print("loadtest: warning: the load generator's CPU was above 90%: timings may include "
              "its own delays", file=sys.stderr, flush=True)
    if step.fatal:
        return _fail(contract.EXIT_CRASH, step.fatal)
    return contract.EXIT_OK


def _wait_ready(step: Step, n: int) -> None:
    """Users connect before t0; start when all are ready (or late ones start late)."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while step.ready < n and time.monotonic() < deadline:
        gevent.sleep(0.005)


def locust_reporter(env: Environment, name: str):
    """Fires Locust's `request` event for each record, for Locust's stats and UI only."""
    fire = env.events.request.fire

    def report(rec: dict) -> None:
        failed = rec["status"] != "ok"
        label = rec["status"] if rec["http_status"] in (None, 200) else f"{rec['status']} {rec['http_status']}"
        fire(request_type="POST", name=name, response_time=(rec["t_last_ns"] - rec["t_send_ns"]) / 1e6,
             response_length=0, exception=RequestFailed(label) if failed else None, context={},
             start_time=rec["wall_send_ns"] / 1e9, url=name, response=None)

    return report


def _report_progress(step: Step) -> None:
    while True:
        gevent.sleep(PROGRESS_EVERY_S)
        _print(contract.progress_line(*_progress(step)))


def _progress(step: Step) -> tuple:
    elapsed, sent, done, errors = step.progress()
    return elapsed, step.load.duration_s, sent, done, errors


def _print(obj: dict) -> None:
    try:
        sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
        sys.stdout.flush()
    except (BrokenPipeError, ValueError):
        pass  # nobody reads progress any more; the spool is what counts


def _one_line(text: object) -> str:
    return " ".join(str(text).split())[:300]


def _fail(code: int, message: str) -> int:
    print(message, file=sys.stderr, flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
