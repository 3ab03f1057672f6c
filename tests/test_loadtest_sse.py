"""The SSE line parser, one hand-written line (or short stream) per case."""

import pytest

from loadtest import sse


def feed_all(lines):
    parser = sse.SSEParser()
    return parser, [parser.feed(line) for line in lines]


@pytest.mark.parametrize(
    "line",
    [
        b'data: {"choices":[{"index":0,"text":"x","finish_reason":null}]}\n',
        b'data:{"choices":[{"index":0,"text":"x"}]}\r\n',  # no space, CRLF
        b'data: {"choices":[{"index":0,"delta":{"content":"hi"}}]}\n',
        b'data: {"choices":[{"index":0,"delta":{"role":"assistant","content":"hi"}}]}\n',
        b'data: {"choices":[{"index":0,"delta":{"reasoning_content":"hmm"}}]}\n',
        b'data: {"choices":[{"index":0,"delta":{"reasoning":"hmm"}}]}\n',
        b'data: {"choices":[{"index":0,"delta":{}},{"index":1,"delta":{"content":"b"}}]}\n',
    ],
)
def test_content_chunks(line):
    assert sse.SSEParser().feed(line) == sse.CONTENT


@pytest.mark.parametrize(
    "line",
    [
        b'data: {"choices":[{"index":0,"delta":{"role":"assistant"}}]}\n',
        b'data: {"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}\n',
        b'data: {"choices":[{"index":0,"delta":{}}]}\n',
        b'data: {"choices":[{"index":0,"delta":{"content":null},"finish_reason":"stop"}]}\n',
        b'data: {"choices":[{"index":0,"text":"","finish_reason":"length"}]}\n',
        b'data: {"choices":[]}\n',
        b'data: {"id":"x"}\n',
    ],
)
def test_chunks_without_output_are_not_content(line):
    assert sse.SSEParser().feed(line) == sse.EMPTY


def test_usage_chunk_captures_token_counts():
    parser, kinds = feed_all([
        b'data: {"choices":[{"text":"a"}],"usage":null}\n',
        b'data: {"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15}}\n',
    ])  # fmt: skip
    assert kinds == [sse.CONTENT, sse.USAGE]
    assert (parser.prompt_tokens, parser.output_tokens) == (12, 3)


def test_content_and_usage_on_one_chunk_is_content_and_keeps_usage():
    parser, kinds = feed_all([b'data: {"choices":[{"text":"a"}],"usage":{"prompt_tokens":1,"completion_tokens":1}}\n'])
    assert kinds == [sse.CONTENT]
    assert parser.output_tokens == 1


def test_servelab_timings_are_captured_alone_or_on_the_usage_chunk():
    timings = b'{"queue_ms":1.5,"prefill_ms":20.0,"batch_size":4,"cache":"miss"}'
    parser, kinds = feed_all([b'data: {"choices":[],"servelab":' + timings + b"}\n"])
    assert kinds == [sse.SERVER]
    assert parser.server == {"queue_ms": 1.5, "prefill_ms": 20.0, "batch_size": 4, "cache": "miss"}
    parser, kinds = feed_all([b'data: {"choices":[],"usage":{"prompt_tokens":2,"completion_tokens":5},"servelab":' + timings + b"}\n"])
    assert kinds == [sse.USAGE]
    assert parser.server["batch_size"] == 4 and parser.output_tokens == 5


def test_done_comments_blanks_and_fields():
    parser, kinds = feed_all([b": keep-alive\n", b"event: message\n", b"id: 7\n", b"retry: 100\n", b"\n",
                              b"\r\n", b"data: [DONE]\n"])
    assert kinds == [sse.COMMENT, sse.FIELD, sse.FIELD, sse.FIELD, sse.BLANK, sse.BLANK, sse.DONE]
    assert parser.done and parser.error is None


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b'data: {"error":{"message":"out of memory","type":"server_error"}}\n', "out of memory"),
        (b'data: {"error":"overloaded"}\n', "overloaded"),
        (b'data: {"object":"error","message":"bad request","code":400}\n', "bad request"),
    ],
)
def test_error_objects_mid_stream(line, message):
    parser, kinds = feed_all([b'data: {"choices":[{"text":"a"}]}\n', line])
    assert kinds == [sse.CONTENT, sse.ERROR]
    assert parser.error == message


def test_error_event_uses_its_data_as_the_message():
    parser, kinds = feed_all([b"event: error\n", b"data: upstream went away\n"])
    assert kinds == [sse.FIELD, sse.ERROR]
    assert parser.error == "upstream went away"


@pytest.mark.parametrize(
    "line",
    [b'data: {"choices":[{"text":"a"}\n', b"data: not json\n", b"data: [1, 2]\n", b'data: "str"\n',
     b"data: \xff\xfe\n", b"data:\n"],
)
def test_malformed_data_is_a_stream_error_never_an_exception(line):
    parser = sse.SSEParser()
    assert parser.feed(line) == sse.ERROR
    assert parser.error.startswith("malformed SSE data")


def test_the_first_error_is_kept():
    parser, _ = feed_all([b"data: nope\n", b'data: {"error":"later"}\n'])
    assert parser.error.startswith("malformed")


def test_long_error_messages_are_truncated():
    parser, _ = feed_all([b'data: {"error":"' + b"e" * 2000 + b'"}\n'])
    assert len(parser.error) == 500


def test_a_whole_openai_chat_stream():
    stream = [
        b'data: {"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}\n', b"\n",
        b'data: {"choices":[{"index":0,"delta":{"content":"Hel"}}]}\n', b"\n",
        b": ping\n", b"\n",
        b'data: {"choices":[{"index":0,"delta":{"content":"lo"}}]}\n', b"\n",
        b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n', b"\n",
        b'data: {"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11}}\n', b"\n",
        b"data: [DONE]\n", b"\n",
    ]  # fmt: skip
    parser, kinds = feed_all(stream)
    assert kinds.count(sse.CONTENT) == 2
    assert parser.done and parser.error is None and parser.output_tokens == 2


def test_finish_reason_is_remembered_and_null_ones_do_not_count():
    p = sse.SSEParser()
    p.feed(b'data: {"choices":[{"index":0,"delta":{"content":"a"},"finish_reason":null}]}\n')
    p.feed(b'data:{"choices":[{"index":0,"text":"","finish_reason":""}]}\r\n')
    assert not p.finished
    assert p.feed(b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"length"}]}\n') == sse.EMPTY
    assert p.finished and not p.done
