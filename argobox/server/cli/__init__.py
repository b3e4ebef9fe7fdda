"""The `argobox` command."""

from argobox.server.cli.main import main

__all__ = ["main"]
