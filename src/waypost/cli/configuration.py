"""Loading the gateway's config file for the commands that run locally (serve, config check, db)."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from waypost.settings import ConfigError, Settings, load_settings

ConfigOption = typer.Option(
    None, "--config", "-c", help="YAML config file (default: $WAYPOST_CONFIG).", show_default=False
)


def config_path(config: Path | None) -> Path | None:
    """The config file: ``--config``, else ``$WAYPOST_CONFIG``, else none (the defaults)."""
    return config or (Path(os.environ["WAYPOST_CONFIG"]) if os.environ.get("WAYPOST_CONFIG") else None)


def load_config(config: Path | None, *, serving: bool = False) -> Settings:
    """The settings from ``config`` (or ``$WAYPOST_CONFIG``); exit 2 listing every problem. With
    ``serving``, also what building the app checks (the models' outbound URLs): ``serve`` and
    ``config check`` refuse the same files, with the same message."""
    path = config_path(config)
    try:
        settings = load_settings(path)
        if serving:
            from waypost.app import check_config_urls  # the app's imports only for these two commands

            check_config_urls(settings)
    except ConfigError as exc:
        if exc.only_environment or path is None:
            where = " in the environment (WAYPOST_* variables)" if exc.only_environment else ""
        else:
            where = f" in {path}"
        typer.echo(f"error: invalid configuration{where}:", err=True)
        for line in str(exc).splitlines():
            typer.echo(f"  {line}", err=True)
        raise typer.Exit(2) from None
    return settings
