"""`tolem migrate` and `tolem audit`: the schema and the ledger's invariants."""

import argparse
import sys
from dataclasses import asdict

from tolem.cli.common import Commands, Parser, connected, emit
from tolem.db import audit as audit_db
from tolem.db import migrate as migrate_db
from tolem.db.pool import dsn_target
from tolem.settings import Settings


async def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    """Applies pending migrations, then the functions files that changed."""
    assert settings.database_url is not None
    target = dsn_target(settings.database_url.get_secret_value())
    async with connected(settings, current=False) as conn:
        applied = await migrate_db.migrate(conn)
    lines = [f"applied {name}" for name in applied] or ["nothing to apply"]
    emit(args, {"database": target, "applied": applied}, "\n".join([f"database {target}", *lines]))
    return 0


async def cmd_audit(args: argparse.Namespace, settings: Settings) -> int:
    """Verifies the ledger's invariants; exit 1 with the list of violations if any fail."""

    def progress(name: str, count: int, seconds: float) -> None:
        print(f"tolem: audit {name}: {count} violation(s) in {seconds:.2f}s", file=sys.stderr)

    async with connected(settings) as conn:
        found = await audit_db.audit(conn, progress)
    data = {"ok": not found, "violations": [asdict(v) for v in found]}
    text = "\n".join(f"{v.check}\t{v.subject or '-'}\t{v.detail}" for v in found) or "ledger ok"
    emit(args, data, text)
    return 1 if found else 0


def register(commands: Commands, common: Parser) -> None:
    """`tolem audit` and `tolem migrate`."""
    commands.add_parser(
        "audit",
        parents=[common],
        help="verify the ledger's invariants",
        description="Checks, in one snapshot, that balances equal their entries, each currency sums "
        "to zero, each payment has exactly the transfers its state needs and no transfer was changed; "
        "exit status 1 with the list of violations, progress on stderr.",
    ).set_defaults(run=cmd_audit)
    # The one command that sets up a database, so the one that may create the private cluster.
    commands.add_parser(
        "migrate",
        parents=[common],
        help="apply pending migrations (creates the private cluster if needed)",
        description="Applies pending sql/migrations in order, each in its own transaction, then the "
        "sql/functions files that changed since they were applied, in one transaction, under an "
        "advisory lock; safe to run twice or from two hosts at once.",
    ).set_defaults(run=cmd_migrate, cluster="create")
