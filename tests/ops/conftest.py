"""Operations tests reuse the Click and Payme gateway fixtures (real adapters whose answers
carry payment codes) and the CLI runner."""

from tests.cli.conftest import Cli, Run, _reset_logging, cli
from tests.http.click.conftest import ClickWorld, world
from tests.http.payme.conftest import Payme, account, clock, payme, provider

__all__ = [
    "Cli",
    "ClickWorld",
    "Payme",
    "Run",
    "_reset_logging",
    "account",
    "cli",
    "clock",
    "payme",
    "provider",
    "world",
]
