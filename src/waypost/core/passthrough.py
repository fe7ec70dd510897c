"""The same-format pass-through: the client's own body, for an upstream of the client's format.

A request decoded from a client body keeps that body as a ``Passthrough``. When the upstream
speaks the client's format, its encoder forwards the body rather than rebuilding it from the
canonical request, so that fields the canonical model does not carry (newer and vendor-specific
ones) survive. What the upstream receives is then always, and only:

* the client's ``body``, never changed and never copied whole (the encoder makes one shallow
  copy per upstream call and writes into that);
* the encoder's own edits, made on every call: the upstream's model name, ``stream`` and its
  usage option, and the token limit in the field the upstream takes;
* every canonical field in ``edited``, re-encoded from the canonical request over the client's
  fields for it. A policy stage that changes a request marks what it changed by changing it
  with ``ChatRequest.edit`` (or ``EmbeddingRequest.edit``), which keeps the two in step; a
  stage that must change a field the canonical model does not carry gives the pass-through a
  new body instead (``with_body``: a shallow copy with the change).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Passthrough:
    """The client's parsed body, and which canonical fields were changed after decoding."""

    body: Mapping[str, Any]
    # Names of ``ChatRequest`` / ``EmbeddingRequest`` attributes a stage changed.
    edited: frozenset[str] = field(default_factory=frozenset)

    def with_edits(self, names: Iterable[str]) -> Passthrough:
        """The same body with ``names`` marked as edited too."""
        return Passthrough(self.body, self.edited.union(names))

    def with_body(self, body: Mapping[str, Any]) -> Passthrough:
        """Another body (a field outside the canonical model changed), the same edits."""
        return Passthrough(body, self.edited)
