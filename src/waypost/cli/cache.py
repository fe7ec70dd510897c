"""``waypost cache``: the response cache's size and counts, and invalidation (admin)."""

from __future__ import annotations

from typing import Any

import typer

from waypost.cli.client import UrlOption, fail, fetch, send
from waypost.cli.output import JsonOption, fields, print_answer, print_json

app = typer.Typer(
    help="The response cache (admin): its size, and invalidating cached answers.", no_args_is_help=True
)


def _size(value: Any) -> str:
    if not isinstance(value, int):
        return "-"
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if value >= scale:
            return f"{value / scale:.1f} {unit}"
    return f"{value} bytes"


@app.command("stats")
def stats(url: str = UrlOption, as_json: bool = JsonOption) -> None:
    """Show whether the cache is on, its size, and what this gateway process served from it."""
    answer = fetch(url, "/admin/cache")
    if as_json:
        print_json(answer)
        return
    if not answer.get("enabled"):
        typer.echo("The response cache is off (cache.enabled: false).")
        return
    counts = answer.get("counts") or {}
    fields(
        [
            ("backend", str(answer.get("backend"))),
            ("tenant", str(answer.get("tenant"))),
            ("ttl", f"{answer.get('ttl'):g}s"),
            ("entries", f"{answer.get('entries', 0):,}"),
            ("size", f"{_size(answer.get('bytes'))} of {_size(answer.get('max_bytes'))}"),
            ("largest entry", _size(answer.get("max_entry_bytes"))),
            (
                "hits",
                f"{counts.get('hits', 0):,} ({counts.get('coalesced', 0):,} waited for an identical request)",
            ),
            ("misses", f"{counts.get('misses', 0):,} ({counts.get('stored', 0):,} stored)"),
            ("bypasses", f"{counts.get('bypasses', 0):,}"),
            (
                "not stored",
                f"{counts.get('too_big', 0):,} too big, {counts.get('store_errors', 0):,} store errors",
            ),
        ]
    )


@app.command("invalidate")
def invalidate(
    key: str | None = typer.Option(
        None, "--key", help="One entry, as the X-Waypost-Cache-Key header names it."
    ),
    model: str | None = typer.Option(None, "--model", help="Every answer of this model."),
    user: str | None = typer.Option(None, "--user", help="Every answer stored for this user (e-mail or id)."),
    group: str | None = typer.Option(None, "--group", help="Every answer stored for this group's callers."),
    everything: bool = typer.Option(False, "--all", help="Every cached answer."),
    url: str = UrlOption,
    as_json: bool = JsonOption,
) -> None:
    """Remove cached answers: one entry, or all of a model's, a user's or a group's, or all."""
    body: dict[str, Any] = {
        k: v for k, v in (("key", key), ("model", model), ("user", user), ("group", group)) if v
    }
    if everything:
        body["all"] = True
    if len(body) != 1:
        fail("give exactly one of --key, --model, --user, --group or --all", 2)
    answer = send(url, "POST", "/admin/cache/invalidate", body)
    removed = answer.get("removed", 0)
    print_answer(
        answer,
        as_json,
        f"Removed {removed} cached answer{'' if removed == 1 else 's'} ({answer.get('scope')}).",
    )
