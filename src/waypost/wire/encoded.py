"""What a request encoder returns: the body for the upstream, and what it could not carry; and
the body of the same-format fast path.

Encoders never change the request they are given. What an upstream's format cannot express is
returned as ``dropped`` (human-readable notes); the caller reports the notes of the attempt
that served the answer, and only those (``X-Waypost-Dropped`` and the access log).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from waypost.core.passthrough import Passthrough


class Encoded(NamedTuple):
    """A request body for an upstream, and the notes of what it could not carry."""

    body: dict[str, Any]
    dropped: tuple[str, ...] = ()


def passthrough_body(
    passthrough: Passthrough,
    fields: Mapping[str, tuple[str, ...]],
    rebuild: Callable[[], dict[str, Any]],
) -> dict[str, Any]:
    """The body for an upstream of the client's own format: a shallow copy of the client's, with
    every canonical field a stage edited re-encoded over it. ``fields`` names the body fields
    that carry each canonical field; ``rebuild`` encodes the whole canonical request (called
    only when something was edited). The caller then writes its own edits (model, stream...)."""
    body = dict(passthrough.body)
    if passthrough.edited:
        built = rebuild()
        for name in passthrough.edited:
            for key in fields.get(name, ()):
                if key in built:
                    body[key] = built[key]
                else:
                    body.pop(key, None)
    return body
