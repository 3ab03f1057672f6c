"""Ingest of hand-written spool files: truncated lines, step bounds, idempotence."""

from __future__ import annotations

import json

import pytest

from store import StoreError, add_step, create_run, get_requests, get_steps, ingest_step, spool_dir
from store import ingest as ingest_mod
from store.schema import connect_read

MS = 1_000_000


def req(req_id, t_send, *, status="ok", ttft=50, chunks=5, gap=10, **extra):
    """A request record with ms offsets turned into integer ns."""
    first = t_send + ttft
    chunk_ns = [(first + gap * i) * MS for i in range(chunks)]
    rec = {"req_id": req_id, "user_id": 0, "t_sched_ns": None, "t_send_ns": t_send * MS,
           "wall_send_ns": 1_700_000_000_000_000_000 + t_send * MS, "t_first_ns": first * MS,
           "t_last_ns": chunk_ns[-1], "chunk_ns": chunk_ns, "status": status, "http_status": 200,
           "error": None, "prompt_tokens": 16, "output_tokens": chunks,
           "prompt_tokens_client": 16, "output_tokens_client": chunks, "max_tokens": chunks,
           "server": {"queue_ms": 1.5, "batch_size": 2}}
    return {**rec, **extra}


def write_lines(path, objs, tail=""):
    with open(path, "w") as fh:
        for o in objs:
            fh.write(json.dumps(o) + "\n")
        fh.write(tail)


@pytest.fixture
def run(tmp_path):
    path = tmp_path / "s.duckdb"
    create_run(path, "r1", {"load": {"mode": "closed", "users": 2}}, "builtin", None, {}, "0")
    add_step(path, "r1", 0, "closed", 2, None, 10.0, 1.0)
    return path


def write_step(path, step=0, *, end=True, truncated=True):
    d = spool_dir(path, "r1", step)
    write_lines(d / "requests-w0.jsonl", [req("w0-1", 1000), req("w0-2", 1200, status="timeout", chunks=2)],
                tail='{"req_id": "w0-3", "t_send_ns": 12' if truncated else "")
    write_lines(d / "requests-w1.jsonl", [req("w1-1", 1100, server=None, output_tokens=None)])
    meta0 = [{"event": "start", "t_ns": 900 * MS, "wall_ns": 5, "pid": 1},
             {"event": "stop", "t_ns": 11_000 * MS, "wall_ns": 6, "sent": 3, "completed": 3}]
    meta1 = [{"event": "start", "t_ns": 950 * MS, "wall_ns": 7, "pid": 2},
             {"event": "stop", "t_ns": 10_900 * MS, "wall_ns": 8, "sent": 1, "completed": 1}]
    if end:
        meta0.append({"event": "end", "t_ns": 12_000 * MS})
        meta1.append({"event": "end", "t_ns": 12_000 * MS})
    write_lines(d / "meta-w0.jsonl", meta0)
    write_lines(d / "meta-w1.jsonl", meta1)
    write_lines(d / "samples-host.jsonl", [{"source": "host", "t_ns": 1000 * MS, "wall_ns": 1, "cpu_pct": 50.0,
                                            "rss_bytes": 1024, "pid": 1, "role": "client"}], tail='{"t_ns": 9')
    return d


def table(path, sql):
    with connect_read(path) as con:
        return con.execute(sql).fetchall()


def test_ingest_keeps_every_whole_line_and_counts_the_cut_one(run):
    d = write_step(run)
    result = ingest_step(run, "r1", 0)
    assert result == {"requests": 3, "samples": 1, "skipped_lines": 2, "status": "completed"}
    df = get_requests(run, "r1")
    assert sorted(df["req_id"]) == ["w0-1", "w0-2", "w1-1"]
    row = df[df.req_id == "w0-1"].iloc[0]
    assert row["producer"] == "w0"
    assert row["t_send_ns"] == 1000 * MS
    assert row["chunk_ns"] == [1050 * MS, 1060 * MS, 1070 * MS, 1080 * MS, 1090 * MS]
    assert row["server"] == {"queue_ms": 1.5, "batch_size": 2}
    assert df[df.req_id == "w1-1"].iloc[0]["server"] is None
    assert table(run, "SELECT producer, source, cpu_pct, rss_bytes, step FROM samples") == [
        ("host", "host", 50.0, 1024, 0)]
    assert not d.exists()  # spool deleted after the commit


def test_step_bounds_and_status_come_from_meta(run):
    write_step(run)
    ingest_step(run, "r1", 0)
    (step,) = get_steps(run, "r1")
    assert (step["t_start_ns"], step["wall_start_ns"], step["t_end_ns"]) == (900 * MS, 5, 11_000 * MS)
    assert step["status"] == "completed"
    assert (step["mode"], step["users"], step["duration_s"], step["warmup_s"]) == ("closed", 2, 10.0, 1.0)


def test_missing_stop_or_end_means_interrupted_and_end_falls_back_to_requests(run):
    d = spool_dir(run, "r1", 0)
    write_lines(d / "requests-w0.jsonl", [req("w0-1", 1000), req("w0-2", 3000, chunks=3)])
    write_lines(d / "meta-w0.jsonl", [{"event": "start", "t_ns": 900 * MS, "wall_ns": 5, "pid": 1}])
    assert ingest_step(run, "r1", 0)["status"] == "interrupted"
    (step,) = get_steps(run, "r1")
    assert step["t_end_ns"] == 3070 * MS  # last t_last_ns: 3000 + 50 + 2*10
    assert step["status"] == "interrupted"


def test_one_producer_without_end_makes_the_step_interrupted(run):
    write_step(run, end=False)
    assert ingest_step(run, "r1", 0)["status"] == "interrupted"


def test_reingest_of_the_same_spool_gives_the_same_rows(run):
    write_step(run)
    ingest_step(run, "r1", 0)
    first = get_requests(run, "r1")
    write_step(run)  # as if a kill came after the commit but before the spool was deleted
    ingest_step(run, "r1", 0)
    again = get_requests(run, "r1")
    assert again.to_dict("records") == first.to_dict("records")
    assert table(run, "SELECT count(*) FROM samples") == [(1,)]


def test_ingest_with_no_spool_left_changes_nothing(run):
    write_step(run)
    ingest_step(run, "r1", 0)
    assert ingest_step(run, "r1", 0) == {"requests": 0, "samples": 0, "skipped_lines": 0, "status": None}
    assert len(get_requests(run, "r1")) == 3


def test_a_failure_inside_the_transaction_keeps_old_rows_and_the_spool(run, monkeypatch):
    write_step(run)
    ingest_step(run, "r1", 0)
    d = write_step(run, truncated=False)
    write_lines(d / "requests-w2.jsonl", [req("w2-1", 2000)])

    def boom(con, *args):
        con.execute("DELETE FROM requests")
        raise RuntimeError("killed mid-ingest")

    monkeypatch.setattr(ingest_mod, "_write_step", boom)
    with pytest.raises(RuntimeError):
        ingest_step(run, "r1", 0)
    assert len(get_requests(run, "r1")) == 3  # rolled back
    assert (d / "requests-w2.jsonl").exists()  # spool kept for the next try
    monkeypatch.undo()
    assert ingest_step(run, "r1", 0)["requests"] == 4


def test_duplicate_req_ids_keep_the_last_record_and_bad_records_are_skipped(run):
    d = spool_dir(run, "r1", 0)
    write_lines(d / "requests-w0.jsonl", [
        req("w0-1", 1000, status="timeout"), req("w0-1", 1000),
        {"req_id": "w0-x", "t_send_ns": 5},  # no status: unusable
        [1, 2, 3],  # valid JSON, not an object
        req("w0-2", 1000, http_status="two hundred"),  # wrong type: that field becomes null
    ])
    result = ingest_step(run, "r1", 0)
    assert (result["requests"], result["skipped_lines"]) == (2, 2)
    df = get_requests(run, "r1")
    assert df.set_index("req_id").loc["w0-1", "status"] == "ok"
    assert df.set_index("req_id").loc["w0-2", "http_status"] is __import__("pandas").NA


def test_ingest_replaces_only_its_own_step(run):
    add_step(run, "r1", 1, "closed", 4, None, 10.0, 1.0)
    write_step(run, 0)
    ingest_step(run, "r1", 0)
    d1 = spool_dir(run, "r1", 1)
    write_lines(d1 / "requests-w0.jsonl", [req("s1-1", 20_000)])
    ingest_step(run, "r1", 1)
    assert len(get_requests(run, "r1", step=0)) == 3
    assert list(get_requests(run, "r1", step=1)["req_id"]) == ["s1-1"]


def test_bulk_ingest_of_many_requests(run):
    d = spool_dir(run, "r1", 0)
    write_lines(d / "requests-w0.jsonl", [req(f"w0-{i}", i, chunks=8) for i in range(20_000)])
    assert ingest_step(run, "r1", 0)["requests"] == 20_000
    assert table(run, "SELECT count(*), sum(len(chunk_ns)) FROM requests") == [(20_000, 160_000)]


def test_a_request_cancelled_before_it_was_sent_is_kept(run):
    d = spool_dir(run, "r1", 0)
    never_sent = {"req_id": "w0-9", "producer": "w0", "user_id": None, "t_sched_ns": 5 * MS, "t_send_ns": None,
                  "wall_send_ns": None, "t_first_ns": None, "t_last_ns": None, "chunk_ns": [],
                  "status": "cancelled", "http_status": None, "error": None, "prompt_tokens": None,
                  "output_tokens": None, "prompt_tokens_client": 16, "output_tokens_client": 0,
                  "max_tokens": 8, "server": None}
    write_lines(d / "requests-w0.jsonl", [req("w0-1", 1000), never_sent])  # no meta: end from requests
    assert ingest_step(run, "r1", 0) == {"requests": 2, "samples": 0, "skipped_lines": 0, "status": "interrupted"}
    df = get_requests(run, "r1").set_index("req_id")
    assert df.loc["w0-9", "status"] == "cancelled" and df.loc["w0-9", "t_send_ns"] is __import__("pandas").NA
    assert get_steps(run, "r1")[0]["t_end_ns"] == 1090 * MS


def test_request_ids_repeated_across_steps_fail_clearly_and_keep_the_spool(run):
    write_step(run, 0)
    ingest_step(run, "r1", 0)
    d1 = spool_dir(run, "r1", 1)
    write_lines(d1 / "requests-w0.jsonl", [req("w0-1", 20_000)])  # same id as step 0's w0-1
    with pytest.raises(StoreError, match="repeats request ids"):
        ingest_step(run, "r1", 1)
    assert (d1 / "requests-w0.jsonl").exists()
    assert len(get_requests(run, "r1")) == 3
