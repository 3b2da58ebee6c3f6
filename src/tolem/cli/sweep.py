"""`tolem sweep`: voids Payme reservations that outlived their 12-hour limit."""

import argparse
import contextlib
from collections.abc import Callable
from typing import Final

from tolem.cli.common import Commands, Parser, connected
from tolem.settings import Settings

_DEFAULT_INTERVAL: Final = 60.0


def _positive(kind: type[int] | type[float]) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from exc
        if value <= 0:
            raise argparse.ArgumentTypeError("must be positive")
        return value

    return parse


async def cmd_sweep(args: argparse.Namespace, settings: Settings) -> int:
    """Sweeps once, or every --interval seconds until stopped."""
    # Imported here: it brings the Payme adapter, which no other command needs.
    from tolem.protocols.payme import sweep  # noqa: PLC0415

    async with connected(settings):
        pass  # refuses to run while migrations are pending
    with contextlib.suppress(KeyboardInterrupt):
        batch = {} if args.batch is None else {"batch": int(args.batch)}
        return await sweep.run(settings, once=args.once, interval=args.interval, **batch)
    return 0


def register(commands: Commands, common: Parser) -> None:
    """`tolem sweep [--once] [--interval S] [--batch N]`."""
    parser = commands.add_parser(
        "sweep",
        parents=[common],
        help="void Payme reservations past their 12-hour limit (a long-running service, or --once from cron)",
        description=(
            "Voids Payme reservations nobody performed or cancelled within 12 hours, so that "
            "CheckTransaction and GetStatement show them cancelled (state -1, reason 4). Any number "
            "of sweepers may run at once; each reservation is voided once."
        ),
    )
    parser.add_argument("--once", action="store_true", help="one pass, then exit (for cron)")
    parser.add_argument(
        "--interval",
        type=_positive(float),
        default=_DEFAULT_INTERVAL,
        help=f"seconds between passes (default {_DEFAULT_INTERVAL:g})",
    )
    parser.add_argument(
        "--batch",
        type=_positive(int),
        help="rows voided per short transaction (default 500)",
    )
    parser.set_defaults(run=cmd_sweep)
