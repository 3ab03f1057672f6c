"""Replicas behind HAProxy: real server processes, a real haproxy, real HTTP on 127.0.0.1."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import psutil
import pytest

from servelab.config import ServerConfig
from servelab.replicas import haproxy_config
from servelab.targets import builtin_server

try:
    from servelab.replicas import haproxy_path

    haproxy_path()
    HAVE_HAPROXY = True
except Exception:  # noqa: BLE001 - UserError: not installed
    HAVE_HAPROXY = False

needs_haproxy = pytest.mark.skipif(not HAVE_HAPROXY, reason="haproxy is not installed: apt-get install haproxy")
READY = re.compile(r"listening on (http://\S+)")


def requests_served(url: str) -> float:
    """Completions a replica answered, from its own /metrics."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return sum(float(line.split()[-1]) for line in text.splitlines()
               if line.startswith("servelab_requests_total{") and 'endpoint="completions"' in line)


def metric(url: str, name: str) -> float:
    for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in {url}/metrics")


def test_config_balances_health_checks_and_never_logs():
    conf = haproxy_config(7, ["http://127.0.0.1:4001", "http://127.0.0.1:4002"], "leastconn")
    assert "bind fd@7" in conf and "balance leastconn" in conf
    assert "server r0 127.0.0.1:4001 check" in conf and "server r1 127.0.0.1:4002 check" in conf
    assert "option httpchk GET /health" in conf
    assert "stick store-response res.hdr(location)" in conf and "stick match path" in conf
    assert not re.search(r"^\s*log\b|option httplog|capture", conf, re.M)


@needs_haproxy
@pytest.mark.slow
def test_two_replicas_share_the_load_and_stream_through_the_front():
    with builtin_server(ServerConfig(model="tiny", replicas=2, seed=1)) as target:
        assert len(target.pids) == 2 and len(target.backends) == 2 and target.lb_pid
        assert set(target.roles()) == {"server", "server1", "lb"}
        with ThreadPoolExecutor(4) as pool:
            bodies = [{"prompt": f"p{i}", "max_tokens": 40, "ignore_eos": True} for i in range(8)]
            codes = list(pool.map(lambda b: httpx.post(f"{target.url}/v1/completions", json=b,
                                                       timeout=60).status_code, bodies))
        assert codes == [200] * 8
        served = [requests_served(url) for url in target.backends]
        assert sum(served) == 8 and all(n >= 2 for n in served), served

        # Jobs: spread over both replicas, yet every poll (each on a new connection) reaches
        # the replica that holds the job.
        before = [metric(url, "servelab_jobs_submitted_total") for url in target.backends]
        ids = [httpx.post(f"{target.url}/v1/jobs", json={"body": {"prompt": f"j{i}", "max_tokens": 3}},
                          timeout=30).json()["id"] for i in range(6)]
        jobs = [httpx.get(f"{target.url}/v1/jobs/{j}", params={"wait": 30}, timeout=60).json() for j in ids]
        assert [j["status"] for j in jobs] == ["succeeded"] * 6
        took = [metric(url, "servelab_jobs_submitted_total") - b for url, b in zip(target.backends, before)]
        assert sum(took) == 6 and all(n >= 1 for n in took), took

        # SSE through haproxy: chunks arrive as generated, not buffered to the end.
        t_send = time.perf_counter()
        arrivals = []
        body = {"prompt": "stream", "max_tokens": 300, "ignore_eos": True, "stream": True}
        with httpx.stream("POST", f"{target.url}/v1/completions", json=body, timeout=120) as r:
            assert r.status_code == 200
            for line in r.iter_lines():
                if line.startswith("data: {"):
                    arrivals.append(time.perf_counter())
        assert len(arrivals) == 300
        total = arrivals[-1] - t_send
        assert arrivals[0] - t_send < 0.5 * total, (arrivals[0] - t_send, total)
        assert arrivals[150] - arrivals[0] > 0.2 * total  # spread over the stream, not in one burst


@needs_haproxy
@pytest.mark.slow
def test_serve_replicas_prints_the_front_and_a_killed_cli_leaves_nothing(cli):
    proc = cli.popen(["serve", "--port", "0", "--replicas", "2", "--model", "tiny"],
                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline()
    url = READY.search(line).group(1)
    assert httpx.get(f"{url}/health", timeout=10).json()["status"] == "ok"
    r = httpx.post(f"{url}/v1/completions", json={"prompt": "x", "max_tokens": 2}, timeout=30)
    assert r.status_code == 200
    family = psutil.Process(proc.pid).children(recursive=True)
    names = sorted(p.name() for p in family)
    assert names.count("haproxy") == 1 and sum("python" in n for n in names) == 2, names
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    deadline = time.monotonic() + 30
    while cli.session(proc) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p.pid for p in cli.session(proc)]


def test_missing_haproxy_is_one_clear_line(cli):
    r = cli("serve", "--port", "0", "--replicas", "2", "--model", "tiny",
            env={"SERVELAB_HAPROXY": "/nonexistent/haproxy"}, timeout=60)
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "apt-get install haproxy" in r.stderr
    assert r.stderr.startswith("servelab: error:")


@needs_haproxy
@pytest.mark.slow
def test_run_with_replicas_stores_the_knob_and_samples_every_replica(cli, tmp_path):
    import json

    import duckdb

    store = str(tmp_path / "s.duckdb")
    r = cli("run", "--target", "builtin", "--model", "tiny", "--replicas", "2", "--balance", "roundrobin",
            "--users", "2", "--duration", "4", "--max-tokens", "8", "--prompt-tokens", "16",
            "--api", "job", "--torch-profile", "1", "--store", store, "--json", timeout=180)
    assert r.returncode == 0, r.stderr[-2000:]
    summary = json.loads(r.stdout)
    assert summary["status"] == "completed" and summary["errors"] == 0 and summary["requests"] > 0
    # The profiler window goes to replica 0 directly: through the balancer its start and
    # stop could reach different replicas (a 409, and a profiler left running).
    assert "torch profile: replica 0 only" in r.stderr and summary["operators"], r.stderr[-2000:]
    with duckdb.connect(store, read_only=True) as db:
        config = json.loads(db.execute("select config from runs").fetchone()[0])
        roles = {row[0] for row in db.execute("select distinct role from samples").fetchall()}
        queued = db.execute("select count(*) from requests where json_extract(server, '$.job_queue_ms') "
                            "is not null").fetchone()[0]
    assert config["server"]["replicas"] == 2 and config["server"]["balance"] == "roundrobin"
    assert config["load"]["api"] == "job" and queued == summary["requests"]
    assert {"server", "server1", "lb", "loadgen"} <= roles
