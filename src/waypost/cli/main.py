"""The ``waypost`` command."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

from waypost.settings import ConfigError, Settings, load_settings

app = typer.Typer(help="Waypost: an LLM gateway.", no_args_is_help=True, add_completion=False)
config_app = typer.Typer(help="Work with configuration files.", no_args_is_help=True)
app.add_typer(config_app, name="config")

ConfigOption = typer.Option(
    None, "--config", "-c", help="YAML config file (default: $WAYPOST_CONFIG).", show_default=False
)


def _load(config: Path | None) -> Settings:
    path = config or (Path(os.environ["WAYPOST_CONFIG"]) if os.environ.get("WAYPOST_CONFIG") else None)
    try:
        return load_settings(path)
    except ConfigError as exc:
        typer.echo(f"error: invalid configuration{f' in {path}' if path else ''}:", err=True)
        for line in str(exc).splitlines():
            typer.echo(f"  {line}", err=True)
        raise typer.Exit(2) from None


@config_app.command("check")
def config_check(config: Path | None = ConfigOption) -> None:
    """Validate a config file; print each error with the key it concerns."""
    settings = _load(config)
    names = ", ".join(m.name for m in settings.models) or "none"
    typer.echo(
        f"ok: {len(settings.models)} model(s) ({names}); listening on {settings.server.host}:{settings.server.port}"
    )


@app.command()
def serve(
    config: Path | None = ConfigOption,
    host: str | None = typer.Option(None, help="Override server.host."),
    port: int | None = typer.Option(None, help="Override server.port."),
) -> None:
    """Run the gateway."""
    import uvicorn

    settings = _load(config)
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
        except Exception as exc:  # the open-mode check depends on the host
            typer.echo(f"error: invalid configuration: {exc}", err=True)
            raise typer.Exit(2) from None
    server = settings.server
    if settings.open_mode:
        typer.echo("warning: auth.api_keys is empty: the gateway is open to anyone on this machine", err=True)
    options = {
        "host": server.host,
        "port": server.port,
        "log_level": "warning",
        "access_log": False,
        "http": "httptools",
        "loop": "uvloop",
        "timeout_graceful_shutdown": 30,
        "server_header": False,
        "proxy_headers": False,  # the gateway does not use client addresses
    }
    if server.workers > 1:
        if config is not None:
            os.environ["WAYPOST_CONFIG"] = str(config.resolve())
        uvicorn.run("waypost.app:app_from_env", factory=True, workers=server.workers, **options)  # type: ignore[arg-type]
    else:
        from waypost.app import create_app

        uvicorn.run(create_app(settings), **options)  # type: ignore[arg-type]


@app.command()
def version() -> None:
    """Print the version."""
    from waypost import __version__

    typer.echo(__version__)


def main() -> None:
    sys.exit(app())
