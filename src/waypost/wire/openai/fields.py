"""Readers of the fields of an OpenAI-format client body, shared by the Chat Completions,
legacy Completions, Embeddings and Responses decoders.

Each reads one field and answers its value, ``None`` when it is absent or null, or raises a
``BadRequest`` worded as OpenAI words it, with ``param`` naming the field the way OpenAI does
(``messages[2].content[0].image_url.url``).
"""

from __future__ import annotations

from typing import Any

import orjson

from waypost.core.errors import BadRequest
from waypost.core.types import ResponseFormat

_FORMAT_TYPES = ("text", "json_object", "json_schema")


def kind_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def bad_type(param: str, expected: str, value: Any) -> BadRequest:
    return BadRequest(
        f"Invalid type for '{param}': expected {expected}, but got {kind_of(value)} instead.", param=param
    )


def missing(param: str) -> BadRequest:
    return BadRequest(f"Missing required parameter: '{param}'.", param=param)


def str_field(obj: dict[str, Any], key: str, param: str, *, required: bool = False) -> str | None:
    value = obj.get(key)
    if value is None:
        if required:
            raise missing(param)
        return None
    if not isinstance(value, str):
        raise bad_type(param, "a string", value)
    return value


def int_field(
    obj: dict[str, Any], key: str, param: str, *, minimum: int | None = None, maximum: int | None = None
) -> int | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        # JSON has one number type: 100.0 is an integer to most clients.
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise bad_type(param, "an integer", value)
    if minimum is not None and value < minimum:
        raise BadRequest(
            f"Invalid '{param}': integer below minimum value. Expected a value >= {minimum}, "
            f"but got {value} instead.",
            param=param,
        )
    if maximum is not None and value > maximum:
        raise BadRequest(
            f"Invalid '{param}': integer above maximum value. Expected a value <= {maximum}, "
            f"but got {value} instead.",
            param=param,
        )
    return value


def float_field(obj: dict[str, Any], key: str, param: str) -> float | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise bad_type(param, "a number", value)
    return float(value)


def bool_field(obj: dict[str, Any], key: str, param: str) -> bool | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise bad_type(param, "a boolean", value)
    return value


def dict_field(obj: dict[str, Any], key: str, param: str, *, required: bool = False) -> dict[str, Any] | None:
    value = obj.get(key)
    if value is None:
        if required:
            raise missing(param)
        return None
    if not isinstance(value, dict):
        raise bad_type(param, "an object", value)
    return value


def list_field(obj: dict[str, Any], key: str, param: str) -> list[Any] | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, list):
        raise bad_type(param, "an array", value)
    return value


def object_value(value: Any, param: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise bad_type(param, "an object", value)
    return value


def stop_field(body: dict[str, Any]) -> list[str]:
    """``stop``: one string or a list of them, as a list."""
    value = body.get("stop")
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        for i, s in enumerate(value):
            if not isinstance(s, str):
                raise bad_type(f"stop[{i}]", "a string", s)
        return list(value)
    raise bad_type("stop", "one of a string or array of strings", value)


def arguments_field(obj: dict[str, Any], param: str) -> str:
    """A tool call's ``arguments`` as JSON text (``{}`` when absent); some clients send the object."""
    args = obj.get("arguments")
    if args is None:
        return "{}"
    if isinstance(args, str):
        return args
    if isinstance(args, dict):
        return orjson.dumps(args).decode()
    raise bad_type(param, "a string", args)


def response_format_value(spec: dict[str, Any], param: str, *, nested: bool) -> ResponseFormat:
    """A structured-output spec: Chat's ``response_format`` nests the schema under ``json_schema``
    (``nested``, the schema optional), the Responses API's ``text.format`` holds it flat (required)."""
    kind = spec.get("type")
    if kind not in _FORMAT_TYPES:
        raise BadRequest(
            f"Invalid value for '{param}.type': {kind!r}. Supported values are: 'text', "
            "'json_object' and 'json_schema'.",
            param=f"{param}.type",
        )
    if kind != "json_schema":
        return ResponseFormat(type=kind)
    holder, hparam = spec, param
    if nested:
        hparam = f"{param}.json_schema"
        holder = dict_field(spec, "json_schema", hparam, required=True) or {}
    return ResponseFormat(
        type="json_schema",
        name=str_field(holder, "name", f"{hparam}.name"),
        schema=dict_field(holder, "schema", f"{hparam}.schema", required=not nested),
        strict=bool_field(holder, "strict", f"{hparam}.strict"),
    )
