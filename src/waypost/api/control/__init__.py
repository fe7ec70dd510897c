"""The control plane: accounts, permissions, models, tokens and secrets over HTTP (FastAPI)."""

from __future__ import annotations

from waypost.api.control.app import build_control_app

__all__ = ["build_control_app"]
