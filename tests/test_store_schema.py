"""Schema, migrations and connection handling of the DuckDB store (real files in tmp_path)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from store import schema
from store.schema import StoreError, connect_read, connect_write

EXPECTED = {
    "runs": [
        ("run_id", "VARCHAR"), ("status", "VARCHAR"), ("created_at", "TIMESTAMP"),
        ("started_at", "TIMESTAMP"), ("ended_at", "TIMESTAMP"), ("target", "VARCHAR"),
        ("label", "VARCHAR"), ("config", "JSON"), ("host", "JSON"), ("version", "VARCHAR"),
        ("error", "VARCHAR"), ("self_check", "JSON"), ("sweep_id", "VARCHAR"), ("setup", "VARCHAR"),
        ("engine", "VARCHAR"), ("engine_version", "VARCHAR"), ("model", "VARCHAR"), ("dtype", "VARCHAR"),
        ("hardware", "VARCHAR"),
    ],
    "steps": [
        ("run_id", "VARCHAR"), ("step", "INTEGER"), ("mode", "VARCHAR"), ("users", "INTEGER"),
        ("rate", "DOUBLE"), ("duration_s", "DOUBLE"), ("warmup_s", "DOUBLE"),
        ("t_start_ns", "BIGINT"), ("t_end_ns", "BIGINT"), ("wall_start_ns", "BIGINT"),
        ("status", "VARCHAR"), ("client_cpu_pct", "DOUBLE"), ("scheduled", "BIGINT"), ("capped", "BIGINT"),
        ("client_stall_max_ms", "DOUBLE"),
    ],
    "requests": [
        ("run_id", "VARCHAR"), ("step", "INTEGER"), ("req_id", "VARCHAR"), ("producer", "VARCHAR"),
        ("user_id", "INTEGER"), ("t_sched_ns", "BIGINT"), ("t_send_ns", "BIGINT"),
        ("wall_send_ns", "BIGINT"), ("t_first_ns", "BIGINT"), ("t_last_ns", "BIGINT"),
        ("chunk_ns", "BIGINT[]"), ("status", "VARCHAR"), ("http_status", "INTEGER"),
        ("error", "VARCHAR"), ("prompt_tokens", "INTEGER"), ("output_tokens", "INTEGER"),
        ("prompt_tokens_client", "INTEGER"), ("output_tokens_client", "INTEGER"),
        ("max_tokens", "INTEGER"), ("server", "JSON"),
    ],
    "samples": [
        ("run_id", "VARCHAR"), ("step", "INTEGER"), ("producer", "VARCHAR"), ("source", "VARCHAR"),
        ("device", "VARCHAR"), ("t_ns", "BIGINT"), ("wall_ns", "BIGINT"), ("power_w", "DOUBLE"),
        ("energy_j", "DOUBLE"), ("gpu_util_pct", "DOUBLE"), ("mem_util_pct", "DOUBLE"),
        ("mem_used_bytes", "BIGINT"), ("mem_total_bytes", "BIGINT"), ("sm_clock_mhz", "DOUBLE"),
        ("mem_clock_mhz", "DOUBLE"), ("temp_c", "DOUBLE"), ("throttle_reasons", "BIGINT"),
        ("proc_gpu_mem_bytes", "BIGINT"), ("cpu_pct", "DOUBLE"), ("rss_bytes", "BIGINT"),
        ("pid", "INTEGER"), ("role", "VARCHAR"),
    ],
    "operators": [
        ("run_id", "VARCHAR"), ("step", "INTEGER"), ("rank", "INTEGER"), ("name", "VARCHAR"),
        ("calls", "BIGINT"), ("self_cpu_us", "DOUBLE"), ("self_cuda_us", "DOUBLE"),
        ("cpu_total_us", "DOUBLE"), ("cuda_total_us", "DOUBLE"), ("window_s", "DOUBLE"),
        ("trace_path", "VARCHAR"), ("window_start_ns", "BIGINT"), ("window_end_ns", "BIGINT"),
    ],
    "sweeps": [
        ("sweep_id", "VARCHAR"), ("name", "VARCHAR"), ("status", "VARCHAR"), ("created_at", "TIMESTAMP"),
        ("started_at", "TIMESTAMP"), ("ended_at", "TIMESTAMP"), ("spec", "JSON"), ("spec_path", "VARCHAR"),
        ("slo", "VARCHAR"), ("result", "JSON"), ("error", "VARCHAR"), ("version", "VARCHAR"),
    ],
    "sweep_points": [
        ("sweep_id", "VARCHAR"), ("setup", "VARCHAR"), ("repeat", "INTEGER"), ("probe", "INTEGER"),
        ("rate", "DOUBLE"), ("users", "INTEGER"), ("run_id", "VARCHAR"), ("status", "VARCHAR"),
        ("slo_met", "BOOLEAN"), ("margin", "DOUBLE"), ("slo_attainment", "DOUBLE"), ("offered_rate", "DOUBLE"),
        ("achieved_rate", "DOUBLE"), ("req_s", "DOUBLE"), ("output_tok_s", "DOUBLE"), ("total_tok_s", "DOUBLE"),
        ("error_rate", "DOUBLE"), ("output_tokens_per_req", "DOUBLE"), ("prompt_tokens_per_req", "DOUBLE"),
        ("ttft_p50_ms", "DOUBLE"), ("ttft_p99_ms", "DOUBLE"), ("tpot_p50_ms", "DOUBLE"), ("tpot_p99_ms", "DOUBLE"),
        ("itl_p99_ms", "DOUBLE"), ("e2e_p50_ms", "DOUBLE"), ("e2e_p99_ms", "DOUBLE"), ("point", "JSON"),
        ("created_at", "TIMESTAMP"),
    ],
    "engine_samples": [
        ("run_id", "VARCHAR"), ("step", "INTEGER"), ("t_ns", "BIGINT"), ("wall_ns", "BIGINT"),
        ("name", "VARCHAR"), ("labels", "VARCHAR"), ("value", "DOUBLE"),
    ],
    "_migrations": [("name", "VARCHAR"), ("applied_at", "TIMESTAMP")],
}


def _columns(con, table):
    return [tuple(r) for r in con.execute(
        "SELECT column_name, data_type FROM information_schema.columns"
        " WHERE table_name = ? ORDER BY ordinal_position", [table]).fetchall()]


def test_first_migration_creates_exactly_the_documented_columns(tmp_path):
    path = tmp_path / "sub" / "dir" / "s.duckdb"  # parent dirs are created
    with connect_write(path) as con:
        tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        assert tables == set(EXPECTED)
        for table, cols in EXPECTED.items():
            assert _columns(con, table) == cols, table


def test_the_spool_contract_is_the_tables_columns(tmp_path):
    """One record contract: a spool line's keys, in order, after run_id and step, are the
    `requests` (and `samples`) table's columns, and the ingest maps exactly those."""
    from servelab.spoolfile import REQUEST_KEYS, SAMPLE_KEYS, STEP_KEYS
    from store.ingest import REQUEST_COLUMNS, SAMPLE_COLUMNS

    with connect_write(tmp_path / "s.duckdb") as con:
        assert [c for c, _ in _columns(con, "requests")] == [*STEP_KEYS, *REQUEST_KEYS] == list(REQUEST_COLUMNS)
        assert [c for c, _ in _columns(con, "samples")] == [*STEP_KEYS, *SAMPLE_KEYS] == list(SAMPLE_COLUMNS)


def test_primary_keys(tmp_path):
    with connect_write(tmp_path / "s.duckdb") as con:
        pks = con.execute(
            "SELECT table_name, constraint_column_names FROM duckdb_constraints()"
            " WHERE constraint_type = 'PRIMARY KEY' ORDER BY table_name").fetchall()
    assert [(t, list(c)) for t, c in pks] == [
        ("_migrations", ["name"]), ("operators", ["run_id", "step", "rank"]), ("requests", ["run_id", "req_id"]),
        ("runs", ["run_id"]), ("steps", ["run_id", "step"]),
        ("sweep_points", ["sweep_id", "setup", "repeat", "probe"]), ("sweeps", ["sweep_id"])]


def test_migrations_are_recorded_once(tmp_path):
    path = tmp_path / "s.duckdb"
    for _ in range(3):
        with connect_write(path) as con:
            rows = con.execute("SELECT name FROM _migrations").fetchall()
    assert rows[:2] == [("m001_initial",), ("m002_operators",)]
    assert rows == [(fn.__name__.lstrip("_"),) for fn in schema.MIGRATIONS]
    with connect_write(path) as con:
        assert schema.migrate(con) == []


def test_a_new_migration_is_applied_once_in_order(tmp_path, monkeypatch):
    path = tmp_path / "s.duckdb"
    connect_write(path).close()

    def _m099_add_note(con):
        con.execute("ALTER TABLE runs ADD COLUMN note TEXT")

    monkeypatch.setattr(schema, "MIGRATIONS", [*schema.MIGRATIONS, _m099_add_note])
    with connect_write(path) as con:
        names = [r[0] for r in con.execute("SELECT name FROM _migrations ORDER BY applied_at, name").fetchall()]
        assert names == [fn.__name__.lstrip("_") for fn in schema.MIGRATIONS]
        assert _columns(con, "runs")[-1] == ("note", "VARCHAR")
    with connect_write(path) as con:  # re-opening does not re-run it (ALTER would fail)
        assert con.execute("SELECT count(*) FROM _migrations").fetchone() == (len(schema.MIGRATIONS),)


def test_connect_read_missing_file(tmp_path):
    missing = tmp_path / "nope.duckdb"
    with pytest.raises(StoreError, match="no store at .*nope.duckdb"):
        connect_read(missing)
    assert not missing.exists()


def test_connect_read_is_read_only(tmp_path):
    path = tmp_path / "s.duckdb"
    connect_write(path).close()
    with connect_read(path) as con, pytest.raises(Exception, match="read-only"):
        con.execute("DELETE FROM runs")


HOLD_WRITER = """
import sys
from store.schema import connect_write
con = connect_write(sys.argv[1])
print("ready", flush=True)
sys.stdin.read()
con.close()
"""


@pytest.fixture
def held_writer(tmp_path):
    """Another process holding a read-write connection until the test ends."""
    path = tmp_path / "busy.duckdb"
    proc = subprocess.Popen([sys.executable, "-c", HOLD_WRITER, str(path)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    yield path, proc
    proc.stdin.close()
    proc.wait(timeout=30)


def test_reader_retries_then_reports_busy(held_writer):
    path, _ = held_writer
    start = time.monotonic()
    with pytest.raises(StoreError, match="is busy") as err:
        connect_read(path, timeout_s=0.6)
    waited = time.monotonic() - start
    assert 0.3 <= waited < 5  # it retried for about the timeout, then gave up
    assert "\n" not in str(err.value)


def test_writer_retries_then_reports_busy(held_writer):
    path, _ = held_writer
    with pytest.raises(StoreError, match="is busy"):
        connect_write(path, timeout_s=0.3)


def test_reader_gets_in_once_the_writer_lets_go(held_writer):
    path, proc = held_writer
    proc.stdin.close()  # the writer closes its connection and exits shortly
    with connect_read(path, timeout_s=20) as con:
        assert con.execute("SELECT count(*) FROM runs").fetchone() == (0,)


def test_a_duckdb_file_that_is_not_a_store_is_one_clear_error(tmp_path):
    import duckdb

    from store.schema import StoreError, connect_read

    other = tmp_path / "other.duckdb"
    duckdb.connect(str(other)).close()
    with pytest.raises(StoreError, match="not a servelab store"):
        connect_read(other)


def _older_store(path):
    import duckdb

    from store.schema import MIGRATIONS

    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied_at TIMESTAMP)")
    first = MIGRATIONS[0]
    first(con)
    con.execute("INSERT INTO _migrations VALUES (?, now())", [first.__name__.lstrip("_")])
    con.close()


def test_a_read_only_open_of_an_older_store_never_writes_and_says_how_to_upgrade(tmp_path):
    old = tmp_path / "old.duckdb"
    _older_store(old)
    before = old.read_bytes()
    with pytest.raises(StoreError, match=r"older servelab .*lacks m002_operators.*servelab runs --store") as err:
        connect_read(old)
    assert "\n" not in str(err.value)
    assert old.read_bytes() == before  # not migrated, not touched


def test_a_writing_command_upgrades_an_older_store_once(tmp_path, cli):
    from store.schema import MIGRATIONS, upgrade

    old = tmp_path / "old.duckdb"
    _older_store(old)
    res = cli("runs", "--store", str(old), "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == []
    with connect_read(old) as con:
        names = {r[0] for r in con.execute("SELECT name FROM _migrations").fetchall()}
    assert names == {m.__name__.lstrip("_") for m in MIGRATIONS}
    assert upgrade(old) == []  # nothing left to do
