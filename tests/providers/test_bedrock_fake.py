"""The fake Bedrock speaks the real service's wire format: boto3's own client signs requests the
fake accepts and parses every answer and error it sends, streamed or not."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import boto3
import botocore.exceptions
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.eventstream import EventStreamBuffer

from tests.fakes import Reply
from tests.fakes.bedrock_upstream import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY, BedrockUpstream
from tests.fakes.eventstream_encoder import Typed, encode_message, event

MODEL = "anthropic.claude-sonnet-4-20250514-v1:0"
HELLO: Any = [{"role": "user", "content": [{"text": "hello there"}]}]


@pytest.fixture
async def fake() -> AsyncIterator[BedrockUpstream]:
    async with BedrockUpstream() as server:
        yield server


def client(fake: BedrockUpstream, **overrides: Any) -> Any:
    options: dict[str, Any] = {
        "endpoint_url": fake.url,
        "region_name": REGION,
        "aws_access_key_id": ACCESS_KEY_ID,
        "aws_secret_access_key": SECRET_ACCESS_KEY,
        "config": Config(retries={"total_max_attempts": 1, "mode": "standard"}),
        **overrides,
    }
    return boto3.client("bedrock-runtime", **options)


async def in_thread(call: Callable[[], Any]) -> Any:
    """boto3 is synchronous: run it off the loop the fake serves on."""
    return await asyncio.to_thread(call)


def stream_events(fake: BedrockUpstream, **kwargs: Any) -> list[dict[str, Any]]:
    response = client(fake).converse_stream(modelId=MODEL, **kwargs)
    return list(response["stream"])


def test_encoded_messages_decode_with_botocores_own_decoder() -> None:
    frame = encode_message(
        {":event-type": "x", "flag": True, "off": False, "n": Typed("long", 7), "b": b"\x00\x01"}, b"{}"
    )
    buffer = EventStreamBuffer()
    buffer.add_data(frame + frame)
    messages = list(buffer)
    assert len(messages) == 2
    assert messages[0].headers == {":event-type": "x", "flag": True, "off": False, "n": 7, "b": b"\x00\x01"}
    assert messages[0].payload == b"{}"


async def test_boto3_converse_reads_text_usage_and_stop_reason(fake: BedrockUpstream) -> None:
    fake.enqueue(Reply(text="Hi!", input_tokens=11, output_tokens=2, cache_read_tokens=5))
    result = await in_thread(lambda: client(fake).converse(modelId=MODEL, messages=HELLO))
    assert result["output"]["message"]["content"] == [{"text": "Hi!"}]
    assert result["stopReason"] == "end_turn"
    assert result["usage"] == {
        "inputTokens": 11,
        "outputTokens": 2,
        "cacheReadInputTokens": 5,
        "cacheWriteInputTokens": 0,
        "totalTokens": 18,
    }
    assert fake.models == [MODEL]


async def test_boto3_requests_pass_the_fakes_signature_check_with_the_model_id_encoded(
    fake: BedrockUpstream,
) -> None:
    await in_thread(lambda: client(fake).converse(modelId=MODEL, messages=HELLO))
    assert fake.raw_paths == ["/model/anthropic.claude-sonnet-4-20250514-v1%3A0/converse"]


async def test_boto3_converse_reads_thinking_and_tool_use(fake: BedrockUpstream) -> None:
    fake.enqueue(
        Reply(thinking=("Let me see.", "sig-1"), tool_calls=[("tooluse_1", "get_weather", {"city": "Oslo"})])
    )
    tools = {"tools": [{"toolSpec": {"name": "get_weather", "inputSchema": {"json": {"type": "object"}}}}]}
    result = await in_thread(lambda: client(fake).converse(modelId=MODEL, messages=HELLO, toolConfig=tools))
    assert result["output"]["message"]["content"] == [
        {"reasoningContent": {"reasoningText": {"text": "Let me see.", "signature": "sig-1"}}},
        {"toolUse": {"toolUseId": "tooluse_1", "name": "get_weather", "input": {"city": "Oslo"}}},
    ]
    assert result["stopReason"] == "tool_use"


async def test_boto3_converse_stream_reads_every_event_in_order(fake: BedrockUpstream) -> None:
    fake.enqueue(
        Reply(
            text="Hello there",
            thinking=("Hmm.", "sig-2"),
            tool_calls=[("tooluse_9", "lookup", {"q": "x"})],
            input_tokens=9,
            output_tokens=4,
        )
    )
    tools = {"tools": [{"toolSpec": {"name": "lookup", "inputSchema": {"json": {"type": "object"}}}}]}
    events = await in_thread(lambda: stream_events(fake, messages=HELLO, toolConfig=tools))
    kinds = [next(iter(e)) for e in events]
    assert kinds[0] == "messageStart" and kinds[-2:] == ["messageStop", "metadata"]
    deltas = [e["contentBlockDelta"]["delta"] for e in events if "contentBlockDelta" in e]
    assert "".join(d["text"] for d in deltas if "text" in d) == "Hello there"
    assert "".join(d["toolUse"]["input"] for d in deltas if "toolUse" in d) == '{"q":"x"}'
    assert {"reasoningContent": {"signature": "sig-2"}} in deltas
    starts = [e["contentBlockStart"] for e in events if "contentBlockStart" in e]
    assert starts == [
        {"start": {"toolUse": {"toolUseId": "tooluse_9", "name": "lookup"}}, "contentBlockIndex": 2}
    ]
    assert events[-1]["metadata"]["usage"]["inputTokens"] == 9


async def test_boto3_raises_the_scripted_error_type_with_its_message(fake: BedrockUpstream) -> None:
    fake.enqueue(Reply(status=429, error_message="Too many tokens"))
    with pytest.raises(botocore.exceptions.ClientError) as err:
        await in_thread(lambda: client(fake).converse(modelId=MODEL, messages=HELLO))
    assert err.value.response["Error"] == {"Code": "ThrottlingException", "Message": "Too many tokens"}
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429


async def test_boto3_raises_a_mid_stream_exception_frame_after_the_events_before_it(
    fake: BedrockUpstream,
) -> None:
    fake.enqueue(Reply(text="one two three", error_event_after_chunks=2, error_type="throttlingException"))
    seen: list[dict[str, Any]] = []

    def read() -> None:
        for item in client(fake).converse_stream(modelId=MODEL, messages=HELLO)["stream"]:
            seen.append(item)

    with pytest.raises(botocore.exceptions.EventStreamError) as err:
        await in_thread(read)
    assert err.value.response["Error"]["Code"] == "throttlingException"
    assert [next(iter(e)) for e in seen] == ["messageStart", "contentBlockDelta"]


async def test_the_fake_refuses_a_wrong_secret(fake: BedrockUpstream) -> None:
    with pytest.raises(botocore.exceptions.ClientError) as err:
        await in_thread(
            lambda: client(fake, aws_secret_access_key="wrong").converse(modelId=MODEL, messages=HELLO)
        )
    assert err.value.response["Error"]["Code"] == "InvalidSignatureException"


async def test_the_fake_refuses_another_region(fake: BedrockUpstream) -> None:
    with pytest.raises(botocore.exceptions.ClientError) as err:
        await in_thread(lambda: client(fake, region_name="eu-west-1").converse(modelId=MODEL, messages=HELLO))
    assert err.value.response["Error"]["Code"] == "InvalidSignatureException"
    assert fake.pending_replies == 0


async def test_the_fake_rejects_what_bedrock_rejects(fake: BedrockUpstream) -> None:
    blank: Any = [{"role": "user", "content": [{"text": "  "}]}]
    with pytest.raises(botocore.exceptions.ClientError) as err:
        await in_thread(lambda: client(fake).converse(modelId=MODEL, messages=blank))
    assert err.value.response["Error"]["Code"] == "ValidationException"
    assert "is blank" in err.value.response["Error"]["Message"]


async def test_boto3_invoke_model_embeds_with_titan_and_cohere(fake: BedrockUpstream) -> None:
    def invoke(model: str, body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
        result = client(fake).invoke_model(modelId=model, body=json.dumps(body))
        return json.loads(result["body"].read()), result["ResponseMetadata"]["HTTPHeaders"]

    titan, _ = await in_thread(
        lambda: invoke("amazon.titan-embed-text-v2:0", {"inputText": "hi", "dimensions": 256})
    )
    assert len(titan["embedding"]) == 256 and titan["inputTextTokenCount"] == 1
    cohere, headers = await in_thread(
        lambda: invoke("cohere.embed-english-v3", {"texts": ["a", "b"], "input_type": "search_query"})
    )
    assert len(cohere["embeddings"]) == 2
    assert headers["x-amzn-bedrock-input-token-count"] == "2"


async def test_boto3_count_tokens_reads_the_count(fake: BedrockUpstream) -> None:
    fake.enqueue(Reply(input_tokens=77))
    result = await in_thread(
        lambda: client(fake).count_tokens(modelId=MODEL, input={"converse": {"messages": HELLO}})
    )
    assert result["inputTokens"] == 77


def test_event_payloads_are_json_with_the_event_type_header() -> None:
    buffer = EventStreamBuffer()
    buffer.add_data(event("messageStart", {"role": "assistant"}))
    (message,) = list(buffer)
    assert message.headers[":event-type"] == "messageStart"
    assert message.headers[":message-type"] == "event"
    assert message.payload == b'{"role":"assistant"}'


async def test_the_fake_refuses_a_path_sent_otherwise_than_it_was_signed(fake: BedrockUpstream) -> None:
    """A client that signs ``%3A`` but lets its HTTP library send ``:`` fails, as it does on AWS."""

    url = f"{fake.url}/model/anthropic.claude-v2%3A1/converse"
    body = b'{"messages":[{"role":"user","content":[{"text":"hi"}]}]}'
    signed = AWSRequest(method="POST", url=url, data=body, headers={"content-type": "application/json"})
    SigV4Auth(Credentials(ACCESS_KEY_ID, SECRET_ACCESS_KEY), "bedrock", REGION).add_auth(signed)
    headers = dict(signed.headers.items())
    async with aiohttp.ClientSession() as session, session.post(url, data=body, headers=headers) as resp:
        assert resp.status == 403
        assert resp.headers["x-amzn-errortype"].startswith("InvalidSignatureException")
    assert fake.raw_paths == ["/model/anthropic.claude-v2:1/converse"]
