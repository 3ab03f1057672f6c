"""The spool writer and the request record (the spool line format)."""

import json
import os

from loadtest import record
from loadtest.spool import SpoolWriter
from loadtest.sse import SSEParser


def test_writer_appends_one_json_line_per_record_and_event(tmp_path):
    with SpoolWriter(tmp_path / "step-0", "w0") as spool:
        spool.write_meta({"event": "start", "t_ns": 1, "wall_ns": 2, "pid": 3})
        spool.write_request({"req_id": "w0-000000", "chunk_ns": [1, 2]})
        spool.write_request({"req_id": "w0-000001", "chunk_ns": []})
        # Flushed per line: another reader sees it before close.
        lines = (tmp_path / "step-0" / "requests-w0.jsonl").read_text().splitlines()
        assert [json.loads(line)["req_id"] for line in lines] == ["w0-000000", "w0-000001"]
    meta = (tmp_path / "step-0" / "meta-w0.jsonl").read_text()
    assert json.loads(meta) == {"event": "start", "t_ns": 1, "wall_ns": 2, "pid": 3}


def test_writer_appends_to_existing_files(tmp_path):
    with SpoolWriter(tmp_path, "w1") as spool:
        spool.write_request({"n": 1})
    with SpoolWriter(tmp_path, "w1") as spool:
        spool.write_request({"n": 2})
    assert (tmp_path / "requests-w1.jsonl").read_text() == '{"n":1}\n{"n":2}\n'


def test_writer_uses_one_write_per_line(tmp_path, monkeypatch):
    calls = []
    real_write = os.write
    monkeypatch.setattr(os, "write", lambda fd, data: calls.append(data) or real_write(fd, data))
    with SpoolWriter(tmp_path, "w0") as spool:
        spool.write_request({"chunk_ns": list(range(5000))})  # ~30 KB, still one line
    assert len(calls) == 1 and calls[0].endswith(b"\n") and calls[0].count(b"\n") == 1


def test_new_record_has_exactly_the_contract_keys():
    rec = record.new_record("w0-000003", "w0", 2, None, 64, 128)
    assert tuple(rec) == record.REQUEST_KEYS
    assert rec["status"] == "cancelled" and rec["chunk_ns"] == [] and rec["output_tokens_client"] == 0
    assert record.req_id("w3", 12) == "w3-000012"


def _stream(lines):
    parser = SSEParser()
    for line in lines:
        parser.feed(line)
    return parser


def test_finish_stream_ok_copies_usage_and_first_chunk():
    rec = record.new_record("w0-000000", "w0", None, None, 2, 5)
    rec["chunk_ns"] = [100, 110]
    parser = _stream([b'data: {"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2},'
                      b'"servelab":{"queue_ms":0}}\n', b"data: [DONE]\n"])
    record.finish_stream(rec, parser)
    assert rec["status"] == "ok" and rec["error"] is None
    assert (rec["t_first_ns"], rec["output_tokens_client"]) == (100, 2)
    assert (rec["prompt_tokens"], rec["output_tokens"], rec["server"]) == (5, 2, {"queue_ms": 0})


def test_finish_stream_without_done_or_with_error_is_a_stream_error():
    rec = record.new_record("w0-000000", "w0", None, None, 2, 5)
    record.finish_stream(rec, _stream([b'data: {"choices":[{"text":"a"}]}\n']))
    assert (rec["status"], rec["error"]) == ("stream_error", "stream ended before a finish_reason or [DONE]")
    rec = record.new_record("w0-000002", "w0", None, None, 2, 5)  # ended after finish_reason: complete
    record.finish_stream(rec, _stream([b'data: {"choices":[{"text":"a","finish_reason":"length"}]}\n']))
    assert (rec["status"], rec["error"], rec["output_tokens"]) == ("ok", None, None)
    rec = record.new_record("w0-000001", "w0", None, None, 2, 5)
    record.finish_stream(rec, _stream([b'data: {"error":"boom"}\n', b"data: [DONE]\n"]))
    assert (rec["status"], rec["error"]) == ("stream_error", "boom")


def test_set_failure_keeps_the_first_cause_and_truncates():
    rec = record.new_record("w0-000000", "w0", None, None, 2, 5)
    record.set_failure(rec, "http_error", "x" * 900)
    record.set_failure(rec, "conn_error", "later")
    assert rec["status"] == "http_error" and len(rec["error"]) == 500
