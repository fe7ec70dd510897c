"""The ``waypost`` command."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import typer
from pydantic import ValidationError

from waypost.cli import (
    audit,
    budgets,
    cache,
    identity,
    limits,
    local,
    models,
    prices,
    reports,
    rules,
    stored_secrets,
    tokens,
    usage,
    users,
)
from waypost.cli.configuration import ConfigOption, config_path, load_config
from waypost.settings import ConfigError, Settings
from waypost.settings_loading import describe_sources, format_validation_error

log = logging.getLogger("waypost.server")

app = typer.Typer(help="Waypost: an LLM gateway.", no_args_is_help=True, add_completion=False)
config_app = typer.Typer(help="Work with configuration files.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(local.db_app, name="db")
identity.register(app)
app.add_typer(users.users_app, name="users")
app.add_typer(users.groups_app, name="groups")
app.add_typer(models.app, name="models")
app.add_typer(prices.app, name="prices")
app.add_typer(tokens.app, name="tokens")
app.add_typer(stored_secrets.app, name="secrets")
stored_secrets.app.command("generate-key")(local.generate_key)
app.add_typer(users.permissions_app, name="permissions")
app.add_typer(usage.app, name="usage")
app.add_typer(budgets.app, name="budgets")
app.add_typer(limits.app, name="limits")
app.add_typer(rules.app, name="rules")
app.add_typer(cache.app, name="cache")
app.command("audit-logs")(usage.audit_logs)
app.add_typer(audit.app, name="audit")
app.add_typer(reports.app, name="reports")


@config_app.command("check")
def config_check(config: Path | None = ConfigOption) -> None:
    """Validate a config file as ``serve`` does; print each error with the key it concerns."""
    settings = load_config(config, serving=True)
    names = ", ".join(m.name for m in settings.models) or "none"
    checked = describe_sources(config_path(config), os.environ)
    typer.echo(
        f"ok: checked {checked} and the WAYPOST_* environment: {len(settings.models)} model(s) ({names});"
        f" listening on {settings.server.host}:{settings.server.port}"
    )


@app.command()
def serve(
    config: Path | None = ConfigOption,
    host: str | None = typer.Option(None, help="Override server.host."),
    port: int | None = typer.Option(None, help="Override server.port."),
    reload: bool = typer.Option(
        False, "--reload", help="Development: restart when Waypost's code or the config file changes."
    ),
) -> None:
    """Run the gateway; SIGTERM (or Ctrl-C) lets in-flight requests finish, then exits 0; SIGHUP
    reloads the config file."""
    from waypost.observability.logging import configure_logging
    from waypost.server import run

    settings = load_config(config, serving=True)
    if host is not None or port is not None:
        settings = settings.model_copy(
            update={
                "server": settings.server.model_copy(
                    update={k: v for k, v in (("host", host), ("port", port)) if v is not None}
                )
            }
        )
        try:
            Settings.model_validate(settings.model_dump(by_alias=True))
        except ValidationError as exc:  # what is allowed off loopback depends on the host
            typer.echo("error: invalid configuration with the --host / --port given:", err=True)
            for line in format_validation_error(exc).splitlines():
                typer.echo(f"  {line}", err=True)
            raise typer.Exit(2) from None
    # From here on every line on stderr is a log line in the configured format.
    configure_logging(settings.logging.level, settings.logging.json_format)
    if settings.open_mode:
        log.warning("auth.open is set: calls without a token act as the bootstrap admin (loopback only)")
    if settings.audit.shutdown_grace is not None:
        log.warning("audit.shutdown_grace is deprecated: set server.shutdown_grace")
    path = config_path(config)
    if path is not None:
        path = path.resolve()
        if settings.server.workers > 1 or reload:
            os.environ["WAYPOST_CONFIG"] = str(path)  # each worker (or restarted process) loads it
    try:
        run(
            settings,
            source=describe_sources(config_path(config), os.environ),
            config_path=path,
            reload=reload,
        )
    except ConfigError as exc:  # found while building the app
        log.error("cannot start: %s", exc)
        raise typer.Exit(2) from None


@app.command()
def version() -> None:
    """Print the version."""
    from waypost import __version__

    typer.echo(__version__)


def main() -> None:
    sys.exit(app())
