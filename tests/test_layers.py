"""Settings from a config file, the environment and flags: one typed model, clear precedence."""

import json
import re
import subprocess
import sys
import time

import duckdb
import httpx
import pytest

from servelab import layers
from servelab.errors import UserError


def test_yaml_and_json_files_split_into_sections(tmp_path):
    y = tmp_path / "s.yaml"
    y.write_text("target: builtin\nworkers: 2\nserver:\n  batching: continuous\nload:\n  rate: 3\n")
    j = tmp_path / "s.json"
    j.write_text(json.dumps({"server": {"model": "tiny"}, "profile": {"gpu": "off"}}))
    a = layers.layered(str(y), {})
    assert a["run"] == {"target": "builtin", "workers": 2}
    assert a["server"] == {"batching": "continuous"} and a["load"] == {"rate": 3}
    assert layers.layered(str(j), {})["profile"] == {"gpu": "off"}
    # serve: a bare ServerConfig mapping is the server section
    bare = tmp_path / "server.json"
    bare.write_text(json.dumps({"model": "tiny", "exact_cache": True}))
    assert layers.layered(str(bare), {}, serve=True)["server"] == {"model": "tiny", "exact_cache": True}


def test_environment_overrides_the_file_and_values_parse_as_json_when_they_can(tmp_path):
    y = tmp_path / "s.yaml"
    y.write_text("server:\n  max_batch_size: 4\n  batching: static\n")
    env = {"SERVELAB_SERVER_MAX_BATCH_SIZE": "16", "SERVELAB_SERVER_EXACT_CACHE": "true",
           "SERVELAB_LOAD_TIER_MIX": '{"high": 0.5}', "SERVELAB_RUN_LABEL": "nightly",
           "SERVELAB_STORE": "not/a/section.duckdb", "SERVELAB_SERVER_": "ignored"}
    got = layers.layered(str(y), env)
    assert got["server"] == {"max_batch_size": 16, "batching": "static", "exact_cache": True}
    assert got["load"] == {"tier_mix": {"high": 0.5}} and got["run"] == {"label": "nightly"}


def test_flags_given_win_over_file_and_environment():
    given = {("load", "duration_s"), ("server", "model")}
    out = layers.merge({"load": {"duration_s": 5.0, "max_tokens": 64}, "server": {"model": "base"}}, given,
                       {"load": {"duration_s": 2, "max_tokens": 8}, "server": {"model": "tiny", "threads": 2}})
    assert out["load"] == {"duration_s": 5.0, "max_tokens": 8}
    assert out["server"] == {"model": "base", "threads": 2}  # a field with no flag given comes from the layer


@pytest.mark.parametrize("text, suffix, message", [
    ("server: [unclosed", ".yaml", "is not valid YAML"),
    ("{nope", ".json", "is not valid JSON"),
    ("- a\n- b\n", ".yaml", "must hold a mapping of settings, not list"),
    ("server: 3\n", ".yaml", "server must be a mapping"),
])
def test_bad_files_are_one_clear_error(tmp_path, text, suffix, message):
    p = tmp_path / f"bad{suffix}"
    p.write_text(text)
    with pytest.raises(UserError, match=re.escape(message)):
        layers.layered(str(p), {})
    with pytest.raises(UserError, match="cannot read config file"):
        layers.layered(str(tmp_path / "missing.yaml"), {})


def test_an_unknown_setting_in_a_file_or_variable_is_one_line_exit_2(cli, tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text("server:\n  batchng: continuous\n")
    res = cli("run", "--config", str(p), "--duration", "1", "--store", str(tmp_path / "s.duckdb"))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.startswith("servelab: error:") and "batchng" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    res = cli("run", "--duration", "1", "--store", str(tmp_path / "s.duckdb"),
              env={"SERVELAB_SERVER_BATCHING": "sometimes"})
    assert res.returncode == 2 and "batching" in res.stderr and len(res.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_a_run_resolves_file_then_environment_then_flags_and_stores_the_result(cli, tmp_path):
    setup = tmp_path / "setup.yaml"
    setup.write_text("label: from-file\nslo: ttft_p99<=2000ms\nserver:\n  model: tiny\n  batching: continuous\n"
                     "  max_batch_size: 4\nload:\n  rate: 4\n  arrival: constant\n  duration_s: 9\n"
                     "  max_tokens: 4\n  prompt_tokens: 8\n  warmup_s: 0\n")
    store = str(tmp_path / "s.duckdb")
    res = cli("run", "--config", str(setup), "--duration", "2", "--store", store, "--json",
              env={"SERVELAB_SERVER_MAX_BATCH_SIZE": "6"})
    assert res.returncode == 0, res.stderr
    run_id = json.loads(res.stdout.strip().splitlines()[-1])["run_id"]
    with duckdb.connect(store, read_only=True) as con:
        cfg = json.loads(con.execute("SELECT config FROM runs WHERE run_id = ?", [run_id]).fetchone()[0])
    assert cfg["label"] == "from-file" and cfg["slo"][0]["threshold_ms"] == 2000
    assert (cfg["server"]["model"], cfg["server"]["batching"]) == ("tiny", "continuous")  # the file
    assert cfg["server"]["max_batch_size"] == 6  # the environment beats the file
    assert cfg["load"]["duration_s"] == 2  # the flag beats both
    assert (cfg["load"]["mode"], cfg["load"]["rate"], cfg["load"]["arrival"]) == ("open", 4, "constant")


def test_serve_takes_a_server_config_file(tmp_path):
    p = tmp_path / "server.json"
    p.write_text(json.dumps({"model": "tiny", "exact_cache": True}))
    proc = subprocess.Popen([sys.executable, "-m", "servelab.cli", "serve", "--config", str(p), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        url = None
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if m := re.search(r"(http://127\.0\.0\.1:\d+)", line):
                url = m.group(1)
        assert url, proc.stderr.read() if proc.poll() is not None else "no address printed"
        assert httpx.get(f"{url}/health", timeout=10).json()["model"] == "tiny"
        body = {"prompt": "hi", "max_tokens": 2, "temperature": 0}
        httpx.post(f"{url}/v1/completions", json=body, timeout=30)
        again = httpx.post(f"{url}/v1/completions", json=body, timeout=30).json()
        assert again["servelab"]["cache"] == "exact"  # the file turned the exact cache on
    finally:
        proc.terminate()
        proc.wait(20)
