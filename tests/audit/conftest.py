"""The audit tests drive the CLI too."""

from tests.cli.conftest import _reset_logging, cli

__all__ = ["_reset_logging", "cli"]
