"""The ``crossmargin`` console command (typer): batch runs for a back office."""

from crossmargin.cli.app import (
    app,
    main,
)

__all__ = [
    "app",
    "main",
]
