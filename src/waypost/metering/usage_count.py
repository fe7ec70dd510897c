"""Usage the gateway counts itself when an upstream reports none (docs/usage.md).

Some upstreams send no usage: llama.cpp's server ignores ``stream_options.include_usage``, and a
few OpenAI-compatible servers leave ``usage`` out of their bodies. A call must never cost zero,
so the gateway then counts what it knows: the prompt as it was sent (``estimate.prompt_text``)
and the text, tool calls (name and arguments) and reasoning it relayed. It counts with the
tokenizer of the model's family where one fits (``tokenizer.encoding_for``), else with the
documented estimate, and says which (``CountedUsage.counted_with``) so the access log can mark
the usage as estimated.

Only the side the upstream left at zero is counted: the prompt when ``input_tokens`` is 0, the
output when ``output_tokens`` is 0 and something was said. Upstreams that report usage cost
nothing here beyond the two comparisons of ``needs_count``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from waypost.core.types import ChatRequest, ChatResponse, TextPart, ThinkingPart, ToolCallPart, Usage
from waypost.metering.estimate import MEDIA_TOKENS, MESSAGE_OVERHEAD, estimate_tokens, prompt_text
from waypost.metering.tokenizer import Tokenizers, encoding_for

ESTIMATE = "estimate"  # ``counted_with`` when no tokenizer fits: a quarter of the characters

# OpenAI's documented chat framing: a few tokens around each message, and the reply's priming.
TOKENS_PER_MESSAGE = 3
REPLY_PRIMING = 3


@dataclass(slots=True)
class AnswerText:
    """What an answer said, in the pieces it came in: text, tool calls (names and argument
    fragments) and reasoning."""

    text: list[str] = field(default_factory=list)
    tools: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, resp: ChatResponse) -> AnswerText:
        """The text of a whole (non-streamed) answer."""
        out = cls()
        for part in resp.content:
            if isinstance(part, TextPart):
                out.text.append(part.text)
            elif isinstance(part, ToolCallPart):
                out.tools += (part.name, part.arguments)
            elif isinstance(part, ThinkingPart):
                out.reasoning.append(part.text)
        return out

    def marks(self) -> tuple[int, int, int]:
        """How many pieces of each kind were said so far (for ``pieces_since``)."""
        return len(self.text), len(self.tools), len(self.reasoning)

    def pieces_since(self, marks: tuple[int, int, int]) -> list[str]:
        """The pieces said after ``marks``."""
        return [*self.text[marks[0] :], *self.tools[marks[1] :], *self.reasoning[marks[2] :]]

    def said_anything(self) -> bool:
        return any(self.text) or any(self.tools) or any(self.reasoning)


@dataclass(frozen=True, slots=True)
class CountedUsage:
    """Usage with what the upstream left out counted by the gateway, and what counted it: an
    encoding name (``o200k_base``, ``cl100k_base``) or ``estimate``."""

    usage: Usage
    counted_with: str


def needs_count(usage: Usage) -> bool:
    """Whether the upstream left the prompt or the output at zero."""
    return usage.input_tokens == 0 or usage.output_tokens == 0


async def count_usage(
    tokenizers: Tokenizers,
    model: str,
    req: ChatRequest,
    answer: AnswerText,
    reported: Usage,
    *,
    output_final: bool = True,
) -> CountedUsage | None:
    """``reported`` with its zero sides counted for the model ``model`` (the upstream's name for
    it); ``None`` when nothing was missing. ``output_final=False``: the reported output is only a
    stream's opening figure (Anthropic's ``message_start`` says 1) and the stream ended before its
    final one, so the output is counted too and the larger figure kept."""
    count_prompt = reported.input_tokens == 0
    count_output = (reported.output_tokens == 0 or not output_final) and answer.said_anything()
    if not (count_prompt or count_output):
        return None
    encoding_name = encoding_for(model)
    encoding = await tokenizers.get(encoding_name) if encoding_name is not None else None
    outputs = ["".join(answer.text), "".join(answer.tools), "".join(answer.reasoning)]
    usage = replace(reported)
    prompt = prompt_text(req) if count_prompt else None
    if encoding is None:
        if prompt is not None:
            framing = prompt.messages * MESSAGE_OVERHEAD + prompt.media * MEDIA_TOKENS
            usage.input_tokens = max(1, estimate_tokens(prompt.texts) + framing)
        if count_output:
            text, tools, reasoning = (estimate_tokens([piece]) for piece in outputs)
            _set_output(usage, text + tools + reasoning, reasoning)
        return CountedUsage(usage, ESTIMATE)
    texts = (prompt.texts if prompt is not None else []) + (outputs if count_output else [])
    counts = await encoding.count_async(texts)
    if prompt is not None:
        framing = prompt.messages * TOKENS_PER_MESSAGE + REPLY_PRIMING + prompt.media * MEDIA_TOKENS
        usage.input_tokens = sum(counts[: len(prompt.texts)]) + framing
    if count_output:
        text, tools, reasoning = counts[-3:]
        _set_output(usage, text + tools + reasoning, reasoning)
    return CountedUsage(usage, encoding.name)


def _set_output(usage: Usage, output: int, reasoning: int) -> None:
    """The counted output, unless the upstream already reported more."""
    if output > usage.output_tokens:
        usage.output_tokens, usage.reasoning_tokens = output, max(reasoning, usage.reasoning_tokens)
