"""Task endpoints for services that just want JSON back: ``POST /classify``, ``/plan``, ``/embed``.

Each speaks two spellings (docs/endpoints.md): Waypost's, answered with ``{"result": <JSON>,
"call": {provider, model, deployment, input_tokens, output_tokens, cost_usd, latency_ms,
attempts}}``, and the original task API's (``prompt`` / ``system_prompt`` / ``text``), answered in
that API's shape with an ``ai_call_log``. Which one a body uses is decided by the fields it names;
a body naming fields of both is a 400. ``/classify`` and ``/plan`` ask the model for one JSON
object (``response_format: json_object``, which providers without a JSON mode get as an
instruction); an answer that is not one is shown to the model with the problem, once, and a
second failure is a 502 naming the problem. Routing (retries, fallbacks) is the router's, so
``attempts`` counts upstream attempts across both model calls, and tokens and cost add up too.
Errors are in the OpenAI format, whichever the spelling.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.types import Receive, Scope, Send

from waypost.api.asgi_io import send_body
from waypost.api.chat import COST_HEADER
from waypost.api.dataplane import JSON, Endpoint, first_byte, serve, served_headers
from waypost.api.formats import OPENAI
from waypost.api.state import Container
from waypost.core.context import Cost, RequestContext
from waypost.core.errors import BadRequest, UpstreamError
from waypost.core.types import ChatRequest, EmbeddingRequest, Message, ResponseFormat, TextPart, Usage
from waypost.pipeline.stage import Reply
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
    cost: Cost | None = None
    served: Served | None = None
    model: str = ""

    def add(self, usage: Usage, served: Served, model: str, cost: Cost) -> None:
        self.usage.input_tokens += usage.input_tokens
        self.usage.output_tokens += usage.output_tokens
        self.usage.cache_read_tokens += usage.cache_read_tokens
        self.usage.cache_write_tokens += usage.cache_write_tokens
        self.usage.cache_write_1h_tokens += usage.cache_write_1h_tokens
        self.usage.reasoning_tokens += usage.reasoning_tokens
        self.attempts += served.attempts
        self.cost = cost if self.cost is None else add_costs(self.cost, cost)
        self.served = served
        self.model = model or served.deployment.upstream_model

    def cost_usd(self) -> float | None:
        """The cost in US dollars; unknown (None) when a call was to an unpriced model."""
        return self.cost.usd if self.cost is not None and self.cost.priced else None

    def body(self, result: Any, started: float) -> bytes:
        """Waypost's answer: the result and the ``call`` record."""
        assert self.served is not None
        dep = self.served.deployment
        call = {
            "provider": dep.provider,
            "model": self.model,
            "deployment": dep.name,
            "input_tokens": self.usage.input_tokens,
            "output_tokens": self.usage.output_tokens,
            "cost_usd": self.cost_usd(),
            "latency_ms": round((time.perf_counter() - started) * 1000, 1),
            "attempts": self.attempts,
        }
        return orjson.dumps({"result": result, "call": call})

    def original_body(self, fields: dict[str, Any], started: float) -> bytes:
        """The original task API's answer: ``fields`` and the ``ai_call_log``."""
        assert self.served is not None
        log = {
            "provider": self.served.deployment.provider,
            "model": self.model,
            "prompt_tokens": self.usage.input_tokens,
            "completion_tokens": self.usage.output_tokens,
            "cost_microcents": microcents(self.cost_usd()),
            "latency_ms": round((time.perf_counter() - started) * 1000),
            "success": True,  # a failed call is an HTTP error, not an answer
        }
        return orjson.dumps({**fields, "ai_call_log": log})


def add_costs(a: Cost, b: Cost) -> Cost:
    """Two calls' costs as one: components and totals add up; unpriced if either was."""
    breakdown = dict(a.breakdown)
    for k, v in b.breakdown.items():
        breakdown[k] = breakdown.get(k, 0) + v
    source = a.source if a.source == b.source else f"{a.source}; {b.source}"
    return Cost(a.total_micros + b.total_micros, breakdown, a.priced and b.priced, source)


def microcents(usd: float | None) -> int | None:
    """US dollars as whole millionths of a cent (1 USD = 10^8), rounded; unknown stays unknown."""
    return None if usd is None else round(usd * 100_000_000)


# -- request fields -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Spelling:
    """An endpoint's request fields: those of either spelling, Waypost's own, the original task
    API's. A body naming fields of both spellings is refused."""

    endpoint: str
    shared: tuple[str, ...]
    waypost: tuple[str, ...]
    original: tuple[str, ...]


CLASSIFY = Spelling(
    "/classify", ("model", "labels", "max_tokens"), ("input", "system"), ("prompt", "system_prompt")
)
PLAN = Spelling("/plan", ("model", "context", "max_tokens"), ("system",), ("system_prompt",))
EMBED = Spelling("/embed", ("model", "dimensions"), ("input",), ("text",))


def _fields(body: Any, spelling: Spelling) -> bool:
    """Check the body's field names; whether it is in the original task API's spelling."""
    endpoint = spelling.endpoint
    if not isinstance(body, dict):
        raise BadRequest(f"The body of {endpoint} must be a JSON object.")
    known = (*spelling.shared, *spelling.waypost, *spelling.original)
    unknown = sorted(k for k in body if k not in known)
    if unknown:
        raise BadRequest(
            f"Unknown field(s) for {endpoint}: {', '.join(unknown)}. Known fields: {', '.join(known)}.",
            param=unknown[0],
        )
    ours = [k for k in spelling.waypost if k in body]
    theirs = [k for k in spelling.original if k in body]
    if ours and theirs:
        raise BadRequest(
            f"The body of {endpoint} mixes two spellings: {', '.join(ours)} (Waypost's) and "
            f"{', '.join(theirs)} (the original task API's). Use {' / '.join(spelling.waypost)} "
            f"or {' / '.join(spelling.original)}, not both.",
            param=theirs[0],
        )
    return bool(theirs)


def _model(body: dict[str, Any], default: str | None, *, defaultable: bool = True) -> str:
    """The model the body names, or with none named (absent or null) the configured default."""
    model = body.get("model")
    if model is None and default is not None:
        return default
    if model is None:
        why = " (this gateway has no default model)" if defaultable else ""
        raise BadRequest(f"Missing required parameter: 'model'{why}.", param="model")
    if not isinstance(model, str) or not model.strip():
        raise BadRequest("'model' must be a non-empty string.", param="model")
    return model


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


async def _ask_json(
    ctx: RequestContext, container: Container, req: ChatRequest, check: Check, original: bool, send: Send
) -> None:
    """Complete ``req`` until the answer is a usable JSON object, at most twice; answer in the
    original task API's shape when ``original``."""
    tally = Tally(Usage())
    metering = container.metering
    problem = ""
    for turn in range(JSON_ANSWER_CALLS):
        resp, served = await container.router.complete(req, ctx)
        tally.add(resp.usage, served, resp.model, metering.price(ctx, resp.usage, served))
        ctx.usage, ctx.cost = tally.usage, tally.cost
        text = resp.text()
        try:
            result = parse_json_answer(text)
            problem = check(result) or ""
        except ValueError as exc:
            problem = str(exc)
        if not problem:
            content = (
                tally.original_body({"result": result}, ctx.started)
                if original
                else tally.body(result, ctx.started)
            )
            await _answer(ctx, container, content, served, send)
            return
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
    served_headers(ctx, container, tally.served)
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
# Each endpoint decodes its body into the canonical request the pipeline's stages see (``ctx.req``)
# and keeps what answering needs in ``ctx.state[TASK]``.

TASK = "task"


def _decode_classify(ctx: RequestContext, container: Container) -> None:
    body = ctx.body
    original = _fields(body, CLASSIFY)
    field = "prompt" if original else "input"
    if field not in body:
        raise BadRequest(
            "Missing required parameter: 'input' (or 'prompt', the original task API's spelling).",
            param="input",
        )
    text = _text(body[field])
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
    system = _opt_str(body, "system_prompt" if original else "system")
    model = _model(body, container.settings.routing.default_model)
    ctx.req = _json_request(model, _with_system(system, instruction), text, _max_tokens(body), schema)
    ctx.state[TASK] = (check, original)


def _decode_plan(ctx: RequestContext, container: Container) -> None:
    body = ctx.body
    original = _fields(body, PLAN)
    if body.get("context") is None:
        raise BadRequest("Missing required parameter: 'context'.", param="context")
    system = (
        _opt_str(body, "system_prompt" if original else "system")
        or "You are a planner: turn the user's context into a plan."
    )
    instruction = "Answer with one JSON object and nothing else: the plan."
    model = _model(body, container.settings.routing.default_model)
    ctx.req = _json_request(
        model, _with_system(system, instruction), _text(body["context"]), _max_tokens(body)
    )
    ctx.state[TASK] = (_is_object, original)


async def _run_json(ctx: RequestContext, container: Container, reply: Reply | None, send: Send) -> None:
    req = ctx.req
    assert isinstance(req, ChatRequest)
    check, original = ctx.state[TASK]
    await _ask_json(ctx, container, req, check, original, send)


def _decode_embed(ctx: RequestContext, container: Container) -> None:
    body = ctx.body
    original = _fields(body, EMBED)
    field = "text" if original else "input"
    value = body.get(field)
    inputs = [value] if isinstance(value, str) else value
    if not isinstance(inputs, list) or not inputs or not all(isinstance(v, str) and v for v in inputs):
        raise BadRequest(
            f"'{field}' must be a non-empty string or a non-empty array of them"
            + ("." if original else " (or give 'text', the original task API's spelling)."),
            param=field,
        )
    dimensions = body.get("dimensions")
    if dimensions is not None and (
        not isinstance(dimensions, int) or isinstance(dimensions, bool) or dimensions < 1
    ):
        raise BadRequest("'dimensions' must be an integer >= 1.", param="dimensions")
    # The default model is a chat model: /embed always names its model.
    model = _model(body, None, defaultable=False)
    ctx.req = EmbeddingRequest(model=model, inputs=list(inputs), dimensions=dimensions)
    ctx.state[TASK] = original


async def _run_embed(ctx: RequestContext, container: Container, reply: Reply | None, send: Send) -> None:
    req = ctx.req
    assert isinstance(req, EmbeddingRequest)
    original = ctx.state[TASK]
    resp, served = await container.router.embed(req, ctx)
    tally = Tally(Usage())
    tally.add(resp.usage, served, resp.model, container.metering.price(ctx, resp.usage, served))
    ctx.usage, ctx.cost = tally.usage, tally.cost
    if original:
        fields = {
            "embeddings": resp.vectors,
            "model": req.model,
            "dimensions": len(resp.vectors[0]) if resp.vectors else req.dimensions,
        }
        content = tally.original_body(fields, ctx.started)
    else:
        content = tally.body({"vectors": resp.vectors}, ctx.started)
    await _answer(ctx, container, content, served, send)


async def _answer(
    ctx: RequestContext, container: Container, content: bytes, served: Served, send: Send
) -> None:
    headers = served_headers(ctx, container, served)
    if container.settings.metering.cost_header and ctx.cost is not None and ctx.cost.priced:
        headers[COST_HEADER] = f"{ctx.cost.usd:.6f}"
    first_byte(ctx, headers)
    await send_body(send, 200, content, JSON, headers)


# No provider relays its own bytes to this caller (``TASK_FORMAT``): every answer is decoded.
CLASSIFY_ENDPOINT = Endpoint("classify", OPENAI, _decode_classify, _run_json, TASK_FORMAT)
PLAN_ENDPOINT = Endpoint("plan", OPENAI, _decode_plan, _run_json, TASK_FORMAT)
EMBED_ENDPOINT = Endpoint("embed", OPENAI, _decode_embed, _run_embed, TASK_FORMAT)


async def handle_classify(container: Container, scope: Scope, receive: Receive, send: Send) -> None:
    await serve(container, CLASSIFY_ENDPOINT, scope, receive, send)


async def handle_plan(container: Container, scope: Scope, receive: Receive, send: Send) -> None:
    await serve(container, PLAN_ENDPOINT, scope, receive, send)


async def handle_embed(container: Container, scope: Scope, receive: Receive, send: Send) -> None:
    await serve(container, EMBED_ENDPOINT, scope, receive, send)
