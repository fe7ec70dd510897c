"""The published attribute and metric registry of the pinned OpenTelemetry semantic conventions:
the constants of ``opentelemetry-semantic-conventions`` (stable and incubating) with their
deprecation notes, read from the package's source (each constant's note is the docstring that
follows it, which Python keeps nowhere at run time)."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import opentelemetry.semconv

# The GenAI conventions left the core registry for their own repository
# (open-telemetry/semantic-conventions-genai); the core package marks every GenAI name with this
# note. That is a move, not a deprecation: the names stay current there. A real deprecation says
# what replaced the name ("Replaced by ...") or that it was removed.
MOVED = "Deprecated: Moved to the [OpenTelemetry GenAI semantic conventions repository]"
ROOT = Path(opentelemetry.semconv.__file__).parent


def _notes(folder: str) -> dict[str, str | None]:
    """name -> its deprecation note (None when it has none), from every module in ``folder``."""
    found: dict[str, str | None] = {}
    for path in sorted((ROOT / folder).glob("*.py")):
        body = ast.parse(path.read_text()).body
        for i, node in enumerate(body):
            after = body[i + 1] if i + 1 < len(body) else None
            target = node.target if isinstance(node, ast.AnnAssign) else None
            value = node.value if isinstance(node, ast.AnnAssign) else None
            if not isinstance(target, ast.Name) or not isinstance(value, ast.Constant):
                continue
            if not isinstance(value.value, str):
                continue
            doc = (
                after.value.value
                if isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)
                else ""
            )
            note = next(
                (line.strip() for line in doc.splitlines() if line.strip().startswith("Deprecated")), None
            )
            found.setdefault(value.value, note)
    return found


@cache
def attributes() -> dict[str, str | None]:
    """Every attribute name of the registry; a stable module's entry wins over the incubating copy."""
    return {**_notes("_incubating/attributes"), **_notes("attributes")}


@cache
def metrics() -> dict[str, str | None]:
    return {**_notes("_incubating/metrics"), **_notes("metrics")}


def problem(name: str, registry: dict[str, str | None]) -> str | None:
    """Why ``name`` may not be emitted (not in the registry, or deprecated), or None."""
    if name not in registry:
        return f"{name}: not in the registry"
    note = registry[name]
    if note is not None and not note.startswith(MOVED):
        return f"{name}: {note}"
    return None
