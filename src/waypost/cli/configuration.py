"""Loading the gateway's config file for the commands that run locally (serve, config check, db)."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from waypost.settings import ConfigError, Settings, load_settings

ConfigOption = typer.Option(
    None, "--config", "-c", help="YAML config file (default: $WAYPOST_CONFIG).", show_default=False
)


def load_config(config: Path | None) -> Settings:
    """The settings from ``config`` (or ``$WAYPOST_CONFIG``); exit 2 listing every problem."""
    path = config or (Path(os.environ["WAYPOST_CONFIG"]) if os.environ.get("WAYPOST_CONFIG") else None)
    try:
        return load_settings(path)
    except ConfigError as exc:
        typer.echo(f"error: invalid configuration{f' in {path}' if path else ''}:", err=True)
        for line in str(exc).splitlines():
            typer.echo(f"  {line}", err=True)
        raise typer.Exit(2) from None
