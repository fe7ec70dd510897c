"""``cost_in_frames``: the cost goes into the usage objects of a relayed batch of SSE events, and
every other byte of the batch stays as the upstream sent it."""

from __future__ import annotations

import orjson

from waypost.api.chat import cost_in_frames
from waypost.core.context import Cost

COST = Cost(220, {"input": 20, "output": 200}, True, "model config")


def chunk(**fields: object) -> bytes:
    return b"data: " + orjson.dumps({"object": "chat.completion.chunk", **fields})


def test_a_whole_stream_in_one_batch_changes_only_its_usage_line() -> None:
    words = [chunk(choices=[{"delta": {"content": f"w{i}"}}], usage=None) for i in range(20)]
    final = chunk(choices=[], usage={"prompt_tokens": 8, "completion_tokens": 20})
    data = b"\n\n".join([*words, final, b"data: [DONE]"]) + b"\n\n"

    out = cost_in_frames(data, COST)

    lines, before = out.split(b"\n\n"), data.split(b"\n\n")
    assert lines[:20] == before[:20]  # "usage": null events byte for byte
    assert orjson.loads(lines[20][6:])["usage"] == {
        "prompt_tokens": 8,
        "completion_tokens": 20,
        "cost_usd": 0.00022,
    }
    assert lines[21:] == before[21:]


def test_crlf_lines_keep_their_ending_and_a_last_line_without_newline_is_found() -> None:
    data = b"event: message_delta\r\ndata: " + orjson.dumps(
        {"type": "message_delta", "usage": {"output_tokens": 3}}
    )
    data += b"\r\n\r\n" + chunk(usage={"total_tokens": 1})  # no newline after it

    out = cost_in_frames(data, COST)

    first, second = out.split(b"\r\n\r\n")
    assert first.startswith(b"event: message_delta\r\ndata: ")
    assert orjson.loads(first.split(b"\r\n")[1][6:])["usage"]["cost_usd"] == 0.00022
    assert orjson.loads(second[6:])["usage"] == {"total_tokens": 1, "cost_usd": 0.00022}


def test_a_responses_event_gets_the_cost_in_its_responses_usage() -> None:
    event = {"type": "response.completed", "response": {"id": "r", "usage": {"input_tokens": 2}}}
    out = cost_in_frames(b"event: response.completed\ndata: " + orjson.dumps(event) + b"\n\n", COST)
    assert orjson.loads(out.split(b"\n")[1][6:])["response"]["usage"]["cost_usd"] == 0.00022


def test_text_that_names_usage_and_lines_that_are_not_events_stay_as_they_are() -> None:
    quoted = chunk(choices=[{"delta": {"content": 'the "usage" field'}}])
    data = b"\n\n".join([quoted, b': comment "usage"', b'data: {"usage": broken', b"data: [DONE]"])
    assert cost_in_frames(data, COST) is data
    assert cost_in_frames(b"data: [DONE]\n\n", COST) == b"data: [DONE]\n\n"


def test_an_unpriced_answer_says_so_with_null() -> None:
    out = cost_in_frames(chunk(usage={"total_tokens": 1}), Cost(0, {}, False, "unpriced"))
    assert orjson.loads(out[6:])["usage"] == {"total_tokens": 1, "cost_usd": None}
