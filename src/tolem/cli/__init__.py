"""The `tolem` command. Bad input exits non-zero with one line on stderr and changes nothing."""

import argparse
import asyncio
import sys
from collections.abc import Sequence
from typing import Final

import asyncpg
from pydantic import ValidationError

from tolem import __version__
from tolem.cli import (
    accounts,
    billing,
    db,
    journal,
    ledger,
    operators,
    payments,
    providers,
    reconcile,
    report,
    serve,
    sweep,
)
from tolem.cli.common import Command, DatabaseUnreachable, Parser, Register, UsageError
from tolem.db import migrate as migrate_db
from tolem.db.embedded import EmbeddedUnavailable
from tolem.db.location import resolve_database
from tolem.log import configure_logging_for
from tolem.settings import Settings

# The command tree, in the order `tolem --help` lists it.
COMMANDS: Final[tuple[Register, ...]] = (
    ledger.register,
    serve.register,
    providers.register,
    accounts.register,
    journal.register,
    sweep.register,
    payments.register,
    report.register,
    reconcile.register,
    billing.register,
    operators.register,
    db.register,
)
# Services that run until stopped: their log is their output, on stdout.
_LONG_RUNNING: Final = frozenset({"serve", "sweep", "deliver"})


def build_parser() -> argparse.ArgumentParser:
    """The whole command tree."""
    parser = Parser(prog="tolem", description=__doc__)
    parser.add_argument("--json", action="store_true", help="machine-readable output (any command)")
    # Every command takes --json too; without a default of its own, so that a --json given
    # before the command (`tolem --json provider list`) is not reset by the command's parser.
    common = Parser(add_help=False)
    common.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output"
    )
    parser.add_argument("--version", action="version", version=f"tolem {__version__}")
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="say which private cluster a command uses (said anyway when it had to start it)",
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for register in COMMANDS:
        register(commands, common)
    return parser


# Settings that `tolem serve` also takes as options, which win over the environment.
_SERVE_OPTIONS: Final = ("host", "port", "workers")


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {k: getattr(args, k, None) for k in _SERVE_OPTIONS}
    settings = Settings()
    update = {k: v for k, v in overrides.items() if v is not None}
    return Settings.model_validate({**settings.model_dump(), **update}) if update else settings


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `tolem` console script."""
    parser = build_parser()
    if not (sys.argv[1:] if argv is None else argv):
        print(parser.format_help(), end="", file=sys.stderr)
        return 2
    try:
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:  # --help and --version have printed what was asked
            return int(exc.code or 0)
        settings = _settings(args)
        configure_logging_for(settings, to_stderr=args.command not in _LONG_RUNNING)
        # Which commands may create the private cluster ("create"), only use an existing one
        # ("use": a command run in the wrong place must not set up a new, empty cluster), or
        # manage it themselves ("none").
        cluster = getattr(args, "cluster", "use")
        if cluster != "none":
            verbose = args.verbose or args.command in _LONG_RUNNING
            settings = resolve_database(settings, create=cluster == "create", verbose=verbose)
        if args.command == "serve":
            return serve.serve(settings)
        run: Command = args.run
        return asyncio.run(run(args, settings))
    except UsageError as exc:
        print(f"tolem: error: {exc}", file=sys.stderr)
        return 2
    except ValidationError as exc:
        print(f"tolem: error: configuration: {_config_problem(exc)}", file=sys.stderr)
        return 2
    except (DatabaseUnreachable, EmbeddedUnavailable, migrate_db.MigrationError, serve.ListenError) as exc:
        print(f"tolem: error: {exc}", file=sys.stderr)
        return 1
    except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        print(
            f"tolem: error: database: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
            file=sys.stderr,
        )
        return 1
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"tolem: error: {where}{exc.strerror or type(exc).__name__}", file=sys.stderr)
        return 1


def _config_problem(exc: ValidationError) -> str:
    """The first invalid setting, named as the operator sets it: its TOLEM_ variable."""
    first = exc.errors()[0]
    field = str(first["loc"][0]) if first["loc"] else ""
    name = f"TOLEM_{field.upper()}" if field in Settings.model_fields else field
    option = f" (or --{field})" if field in _SERVE_OPTIONS else ""
    # A check across settings (a billing sink without its URL) names its variables itself.
    return f"{name}{option}: {first['msg']}" if name else str(first["msg"])
