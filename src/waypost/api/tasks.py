"""Task endpoints for services that just want JSON back: ``POST /classify``, ``/plan``, ``/embed``.

Each answers ``{"result": <JSON>, "call": {provider, model, deployment, input_tokens,
output_tokens, cost_usd, latency_ms, attempts}}``. ``/classify`` and ``/plan`` ask the model for
one JSON object (``response_format: json_object``, which providers without a JSON mode get as an
instruction); an answer that is not one is shown to the model with the problem, once, and a
second failure is a 502 naming the problem. Routing (retries, fallbacks) is the router's, so
``attempts`` counts upstream attempts across both model calls, and tokens and cost add up too.
Errors are in the OpenAI format.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.types import Receive, Scope, Send

from waypost.api.chat import Call
from waypost.api.formats import OPENAI
from waypost.api.json_endpoint import Answer, Exchange, serve_json
from waypost.api.state import Container
from waypost.core.errors import BadRequest, UpstreamError
from waypost.core.types import ChatRequest, EmbeddingRequest, Message, ResponseFormat, TextPart, Usage
from waypost.metering.pricing import cost_usd
from waypost.providers.base import CallContext
from waypost.routing.router import Served

# No provider relays its own bytes to this caller: every answer is decoded.
TASK_FORMAT = "task"
JSON_ANSWER_CALLS = 2
_EXCERPT = 200


@dataclass(slots=True)
class Tally:
    """What the model calls of one task request added up to."""

    usage: Usage
    attempts: int = 0
    cost: float | None = 0.0
    served: Served | None = None
    model: str = ""

    def add(self, usage: Usage, served: Served, model: str) -> None:
        self.usage.input_tokens += usage.input_tokens
        self.usage.output_tokens += usage.output_tokens
        self.usage.cache_read_tokens += usage.cache_read_tokens
        self.usage.cache_write_tokens += usage.cache_write_tokens
        self.usage.reasoning_tokens += usage.reasoning_tokens
        self.attempts += served.attempts
        cost = cost_usd(usage, served.deployment.settings.prices)
        # One unpriced call makes the total unknown.
        self.cost = None if cost is None or self.cost is None else self.cost + cost
        self.served = served
        self.model = model or served.deployment.upstream_model

    def body(self, result: Any, started: float) -> bytes:
        assert self.served is not None
        dep = self.served.deployment
        call = {
            "provider": dep.provider,
            "model": self.model,
            "deployment": dep.name,
            "input_tokens": self.usage.input_tokens,
            "output_tokens": self.usage.output_tokens,
            "cost_usd": self.cost,
            "latency_ms": round((time.perf_counter() - started) * 1000, 1),
            "attempts": self.attempts,
        }
        return orjson.dumps({"result": result, "call": call})


# -- request fields -------------------------------------------------------------------------------


def _fields(body: Any, endpoint: str, known: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise BadRequest(f"The body of {endpoint} must be a JSON object.")
    unknown = sorted(k for k in body if k not in known)
    if unknown:
        raise BadRequest(
            f"Unknown field(s) for {endpoint}: {', '.join(unknown)}. Known fields: {', '.join(known)}.",
            param=unknown[0],
        )
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise BadRequest("'model' must be a non-empty string.", param="model")
    return body


def _text(value: Any) -> str:
    """A text field, or any other JSON value as its JSON text."""
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def _opt_str(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise BadRequest(f"'{name}' must be a string.", param=name)
    return value


def _max_tokens(body: dict[str, Any]) -> int | None:
    value = body.get("max_tokens")
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise BadRequest("'max_tokens' must be an integer >= 1.", param="max_tokens")
    return value


def _labels(body: dict[str, Any]) -> list[str] | None:
    value = body.get("labels")
    if value is None:
        return None
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise BadRequest("'labels' must be a non-empty array of non-empty strings.", param="labels")
    return list(dict.fromkeys(value))


# -- asking for JSON ------------------------------------------------------------------------------


def parse_json_answer(text: str) -> Any:
    """The JSON value of a model's answer, tolerating a Markdown code fence around it.
    Raises ``ValueError`` describing what is wrong."""
    body = text.strip()
    if body.startswith("```"):
        body = body.split("\n", 1)[1] if "\n" in body else ""
        body = body.rstrip().removesuffix("```").strip()
    if not body:
        raise ValueError("the answer is empty")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"the answer is not valid JSON ({exc.msg} at position {exc.pos})") from None


Check = Callable[[Any], str | None]  # the problem with a parsed answer, or None when usable


def _is_object(value: Any) -> str | None:
    return None if isinstance(value, dict) else f"the answer is JSON {type(value).__name__}, not an object"


def _label_in(labels: list[str]) -> Check:
    def check(value: Any) -> str | None:
        if not isinstance(value, dict):
            return _is_object(value)
        label = value.get("label")
        if label not in labels:
            return f"the answer's label {label!r} is not one of {labels}"
        return None

    return check


async def _ask_json(ex: Exchange, req: ChatRequest, check: Check) -> Answer:
    """Complete ``req`` until the answer is a usable JSON object, at most twice."""
    call = ex.call = Call(ex.container, ex.rid, req, ex.started, len(req.notes))
    ctx = CallContext(ex.rid, TASK_FORMAT, principal=ex.principal)
    tally = Tally(Usage())
    problem = ""
    for turn in range(JSON_ANSWER_CALLS):
        resp, served = await ex.container.router.complete(req, ctx)
        tally.add(resp.usage, served, resp.model)
        text = resp.text()
        try:
            result = parse_json_answer(text)
            problem = check(result) or ""
        except ValueError as exc:
            problem = str(exc)
        if not problem:
            return Answer(tally.body(result, ex.started), call.serve(served, OPENAI), tally.usage)
        if turn + 1 < JSON_ANSWER_CALLS:
            req.messages += [
                Message(role="assistant", content=[TextPart(text=text)]),
                Message(
                    role="user",
                    content=[
                        TextPart(
                            text=f"That answer is not usable: {problem}. Answer again with only one JSON object."
                        )
                    ],
                ),
            ]
    assert tally.served is not None
    call.serve(tally.served, OPENAI)
    excerpt = text.strip()[:_EXCERPT]
    raise UpstreamError(
        f"The model {req.model!r} did not answer with usable JSON in {JSON_ANSWER_CALLS} calls: {problem}. "
        f"Last answer began: {excerpt!r}",
        provider=tally.served.deployment.provider,
    )


def _json_request(
    model: str, system: str, user: str, max_tokens: int | None, schema: dict[str, Any] | None = None
) -> ChatRequest:
    """Ask for one JSON object; with a schema, providers that have structured output enforce it."""
    fmt = (
        ResponseFormat(type="json_schema", schema=schema, name="answer")
        if schema
        else ResponseFormat(type="json_object")
    )
    return ChatRequest(
        model=model,
        messages=[
            Message(role="system", content=[TextPart(text=system)]),
            Message(role="user", content=[TextPart(text=user)]),
        ],
        max_tokens=max_tokens,
        response_format=fmt,
    )


def _with_system(caller: str | None, instruction: str) -> str:
    return f"{caller}\n\n{instruction}" if caller else instruction


# -- endpoints ------------------------------------------------------------------------------------


async def _classify(ex: Exchange) -> Answer:
    body = _fields(ex.body, "/classify", ("model", "prompt", "input", "labels", "system", "max_tokens"))
    if ("prompt" in body) == ("input" in body):
        raise BadRequest("Give the text to classify as exactly one of 'prompt' or 'input'.", param="prompt")
    text = _text(body["prompt"] if "prompt" in body else body["input"])
    labels = _labels(body)
    if labels is not None:
        listed = ", ".join(orjson.dumps(label).decode() for label in labels)
        instruction = (
            f"Classify the user's input into exactly one of these labels: {listed}. Answer with one JSON "
            'object and nothing else: {"label": "<one of the labels>"}.'
        )
        check = _label_in(labels)
        schema: dict[str, Any] | None = {
            "type": "object",
            "properties": {"label": {"type": "string", "enum": labels}},
            "required": ["label"],
        }
    else:
        schema = None
        instruction = (
            "Classify the user's input. Answer with one JSON object and nothing else, with the "
            'classification in "label" (and any other fields you are asked for).'
        )
        check = _is_object
    req = _json_request(
        body["model"], _with_system(_opt_str(body, "system"), instruction), text, _max_tokens(body), schema
    )
    return await _ask_json(ex, req, check)


async def _plan(ex: Exchange) -> Answer:
    body = _fields(ex.body, "/plan", ("model", "context", "system", "max_tokens"))
    if body.get("context") is None:
        raise BadRequest("Missing required parameter: 'context'.", param="context")
    system = _opt_str(body, "system") or "You are a planner: turn the user's context into a plan."
    instruction = "Answer with one JSON object and nothing else: the plan."
    req = _json_request(
        body["model"], _with_system(system, instruction), _text(body["context"]), _max_tokens(body)
    )
    return await _ask_json(ex, req, _is_object)


async def _embed(ex: Exchange) -> Answer:
    body = _fields(ex.body, "/embed", ("model", "input", "dimensions"))
    value = body.get("input")
    inputs = [value] if isinstance(value, str) else value
    if not isinstance(inputs, list) or not inputs or not all(isinstance(v, str) and v for v in inputs):
        raise BadRequest("'input' must be a non-empty string or a non-empty array of them.", param="input")
    dimensions = body.get("dimensions")
    if dimensions is not None and (
        not isinstance(dimensions, int) or isinstance(dimensions, bool) or dimensions < 1
    ):
        raise BadRequest("'dimensions' must be an integer >= 1.", param="dimensions")
    req = EmbeddingRequest(model=body["model"], inputs=list(inputs), dimensions=dimensions)
    call = ex.call = Call(ex.container, ex.rid, req, ex.started, 0)
    resp, served = await ex.container.router.embed(
        req, CallContext(ex.rid, TASK_FORMAT, principal=ex.principal)
    )
    tally = Tally(Usage())
    tally.add(resp.usage, served, resp.model)
    return Answer(tally.body({"vectors": resp.vectors}, ex.started), call.serve(served, OPENAI), tally.usage)


async def handle_classify(container: Container, scope: Scope, receive: Receive, send: Send) -> None:
    await serve_json(container, OPENAI, _classify, scope, receive, send)


async def handle_plan(container: Container, scope: Scope, receive: Receive, send: Send) -> None:
    await serve_json(container, OPENAI, _plan, scope, receive, send)


async def handle_embed(container: Container, scope: Scope, receive: Receive, send: Send) -> None:
    await serve_json(container, OPENAI, _embed, scope, receive, send)
