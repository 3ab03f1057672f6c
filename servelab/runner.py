"""The composition root of one run: config -> target -> load process -> spool -> store.

Everything it uses is passed in or imported from the packages that own it; the CLI only
parses flags into a `RunConfig` and calls `execute_run`.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
from collections.abc import Callable, Iterator
from pathlib import Path

from servelab import __version__
from servelab.config import RunConfig
from servelab.engines import Engine, hardware, launched
from servelab.errors import UserError
from servelab.sampling import StepProbes
from servelab.telemetry import Scraper
from servelab.targets import Target, builtin_server, normalize_url
from servelab.workers import master_address, run_with_master, run_workers, write_specs
from store import ingest, runs

Progress = Callable[[dict], None]
EXIT_UNREACHABLE = 3
EXIT_LOST = 5  # loadtest.master: a worker disappeared mid-step (its shipped records are kept)


def host_info() -> dict:
    import psutil

    return {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "mem_bytes": psutil.virtual_memory().total,
    }


def setup_columns(cfg: RunConfig, engine: Engine | None) -> dict:
    """The run's setup as queryable columns: engine, engine_version, model, dtype, hardware.
    A URL target's engine and hardware are not known here (None); its model is the name sent."""
    if engine is not None:
        info = engine.info
        return {"engine": info.get("engine"), "engine_version": info.get("engine_version"),
                "model": info.get("model"), "dtype": info.get("dtype"), "hardware": hardware()}
    if cfg.target == "builtin":
        sv = cfg.server
        return {"engine": "builtin", "engine_version": __version__,
                "model": "calibration" if sv.calibration else sv.model, "dtype": sv.precision,
                "hardware": hardware()}
    return {"engine": None, "engine_version": None, "model": cfg.load.served_model, "dtype": None,
            "hardware": None}


@contextlib.contextmanager
def open_target(cfg: RunConfig, engine: Engine | None = None) -> Iterator[Target]:
    """Yields the run's Target (`.url`, and `.pid` of the built-in server or of a launched
    engine, whose CPU and memory the sampler then records), starting the built-in one if asked."""
    if engine is not None:
        yield Target(engine.url, engine.pid, (engine.pid,))
    elif cfg.target == "builtin":
        with builtin_server(cfg.server) as target:
            yield target
    else:
        yield Target(normalize_url(cfg.target))


def execute_run(cfg: RunConfig, store_path: str, on_progress: Progress | None = None,
                sweep_id: str | None = None, setup: str | None = None, engine: Engine | None = None) -> str:
    """Runs one single-step run and ingests it; returns the run id. A sweep's point passes
    its sweep id and setup name, stored on the run row, and the engine it already started.

    The run row is created first (status `running`), so a crash at any later point leaves a
    run that `store.ingest.recover` finds, ingests and marks `interrupted`.
    """
    if cfg.engine and engine is None:  # started for this run alone, stopped after it
        note = (lambda text: on_progress({"note": text})) if on_progress else None
        with launched(cfg.engine, cfg.engine_args, cfg.engine_python, cfg.engine_ready_timeout_s, note,
                      env=cfg.server.child_env(os.environ)) as started:
            return execute_run(cfg, store_path, on_progress, sweep_id, setup, started)
    if engine is not None:  # measured as a URL target: the run's target is the engine's URL
        cfg = cfg.model_copy(update={"target": engine.url})
    if cfg.target != "builtin":  # a bad URL fails before anything is recorded
        from servelab import served_model

        note = (lambda text: on_progress({"note": text})) if on_progress else None
        cfg = served_model.resolve(cfg, normalize_url(cfg.target), os.environ, note)
    if cfg.load.tier_mix:  # so does a tier without a key
        from loadtest.tiers import keys_for

        try:
            keys_for(cfg.load.tier_mix, cfg.server.child_env(os.environ))
        except ValueError as exc:
            raise UserError(str(exc)) from None
    ingest.recover(store_path)
    run_id = runs.new_run_id()
    config = cfg.model_dump(mode="json")
    status, error = "failed", None
    # Lock first: a run row is only ever `running` while its lock exists, so recovery
    # finds every run whose process died.
    with runs.RunLock(store_path, run_id) as lock:
        runs.create_run(store_path, run_id, config, cfg.target, cfg.label, host_info(),
                        __version__, sweep_id=sweep_id, setup=setup)
        runs.set_setup(store_path, run_id, setup_columns(cfg, engine))
        try:
            status = _run_step(cfg, store_path, run_id, 0, lock.fileno(), on_progress, engine)
        except UserError as exc:
            error = str(exc)
            raise
        except KeyboardInterrupt:
            status, error = "interrupted", "interrupted by the user"
            raise
        finally:
            ingest.ingest_step(store_path, run_id, 0)
            runs.finish_run(store_path, run_id, status, error)
    if status == "completed":
        from servelab.results import record_self_check

        record_self_check(store_path, run_id)
    return run_id


def _run_step(cfg: RunConfig, store_path: str, run_id: str, step: int, lock_fd: int,
              on_progress: Progress | None, engine: Engine | None = None) -> str:
    load = cfg.load
    runs.add_step(store_path, run_id, step, load.mode, load.users if load.mode == "closed" else None,
                  load.rate, load.duration_s, load.warmup)
    spool = runs.spool_dir(store_path, run_id, step)
    if on_progress and cfg.target == "builtin":
        n = cfg.server.replicas
        sv = cfg.server
        what = "calibration mode, no model" if sv.calibration else f"{sv.model} model, {sv.device} {sv.precision}"
        on_progress({"note": f"starting the built-in server ({what}"
                             + (f", {n} replicas behind haproxy)" if n > 1 else ")")})
    with open_target(cfg, engine) as target:
        url = target.url
        base = {"run_id": run_id, "step": step, "target_url": url, "builtin": cfg.target == "builtin",
                "spool_dir": str(spool), "api_key_env": load.api_key_env}
        # With replicas the window is on replica 0 itself: through the balancer, its start
        # and stop could land on different replicas.
        profile_url = target.backends[0] if target.backends else url
        probes = StepProbes(cfg.profile, store_path, run_id, step, spool, profile_url, target.pid,
                            load.duration_s, lock_fd, on_progress, warmup_s=load.warmup,
                            server_roles=target.roles(), engine=engine.kind if engine else None)
        results = None
        scraper = None
        if cfg.target != "builtin" and cfg.profile.enabled:  # the engine's own /metrics
            from servelab.served_model import request_headers

            scraper = Scraper(url, spool, probes.note, headers=request_headers(cfg, os.environ))
        try:
            probes.prepare()
            if scraper:
                scraper.start()
            if cfg.distributed:
                spec = Path(spool) / "spec-master.json"
                spec.write_text(json.dumps({**base, "producer": "master", "load": load.model_dump(mode="json")}))
                bind = master_address(cfg.master_bind, cfg.remote_workers)
                results = run_with_master(spec, cfg.workers, cfg.remote_workers, bind, lock_fd,
                                          probes.relay, on_spawn=probes.start, env=worker_env(cfg))
            else:
                spec_paths = write_specs(base, load, cfg.workers, Path(spool))
                # Tiered load finds each tier's key in SERVELAB_API_KEYS, inline api_keys included.
                results = run_workers(spec_paths, lock_fd, probes.relay, on_spawn=probes.start,
                                      env=worker_env(cfg))
        finally:
            if scraper:
                scraper.stop()
            # Only a load that ended by itself gets its torch profile built (seconds of the
            # server's time): after Ctrl-C or a crash the user is not kept waiting for it.
            probes.finish(collect=results is not None)
    return _step_status(results, url)


def worker_env(cfg: RunConfig) -> dict[str, str]:
    """The load generators' environment: tier keys (SERVELAB_API_KEYS, inline api_keys
    included) and the real values of the run's extra headers, which no file holds."""
    env = cfg.server.child_env(os.environ)
    if cfg.load.headers:
        from servelab.headers import HEADERS_ENV

        env[HEADERS_ENV] = json.dumps({**json.loads(env.get(HEADERS_ENV) or "{}"), **cfg.load.headers})
    return env


def _step_status(results: list[tuple[int, str]], url: str) -> str:
    """The step's status from its workers' exits: every one 0 -> completed; any killed by a
    signal -> interrupted (the others' records and its own spooled ones are kept)."""
    for rc, err in results:
        if rc == EXIT_UNREACHABLE:
            raise UserError(err or f"cannot reach {url}")
    if all(rc == 0 for rc, _ in results):
        return "completed"
    if all(rc <= 0 or rc == EXIT_LOST for rc, _ in results):
        return "interrupted"  # a load generator was killed by a signal
    rc, err = next((rc, err) for rc, err in results if rc > 0)
    raise UserError(f"the load generator failed (exit {rc}): {err}")
