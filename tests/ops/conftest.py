"""Operations tests reuse the Click gateway world (a real adapter whose answers echo the code)
and the CLI runner."""

from tests.cli.conftest import Cli, Run, _reset_logging, cli
from tests.http.click.conftest import ClickWorld, world

__all__ = ["Cli", "ClickWorld", "Run", "_reset_logging", "cli", "world"]
