"""Commands that work without a running gateway: ``db upgrade``, ``secrets generate-key``."""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer

from waypost.cli.client import fail
from waypost.cli.configuration import ConfigOption, load_config

db_app = typer.Typer(help="Manage the database.", no_args_is_help=True)


@db_app.command("upgrade")
def upgrade(config: Path | None = ConfigOption) -> None:
    """Create or migrate the configured database to the latest schema."""
    from waypost.store.migrate import upgrade_database

    settings = load_config(config)
    try:
        result = asyncio.run(upgrade_database(settings.database))
    except Exception as exc:  # any driver error: say which database, without a traceback
        fail(f"cannot upgrade the database: {exc}")
    if result.ran:  # this process ran the migrations; one that waited on the lock finds them done
        found = f"revision {result.before}" if result.before else "an empty database"
        typer.echo(f"Database migrated from {found} to revision {result.revision}.")
    else:
        typer.echo(f"Database is up to date (revision {result.revision}).")


def generate_key() -> None:
    """Print a new encryption key for security.encryption_keys."""
    from waypost.security.crypto import generate_key as new_key

    typer.echo(new_key())
