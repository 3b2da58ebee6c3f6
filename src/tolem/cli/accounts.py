"""`tolem account …` and `tolem payer add`: customers, their payers and codes."""

import argparse
import sys
from dataclasses import asdict
from zoneinfo import ZoneInfo

from tolem.cli import imports
from tolem.cli.common import (
    MAX_NAME,
    MAX_SERVICE,
    Commands,
    Parser,
    UsageError,
    code,
    connected,
    currency_mismatch,
    email,
    emit,
    local_time,
    text,
)
from tolem.core.model import AccountStatus
from tolem.core.money import format_amount
from tolem.db import accounts as account_db
from tolem.db.ledger import CurrencyMismatch
from tolem.settings import Settings


async def cmd_account_create(args: argparse.Namespace, settings: Settings) -> int:
    """Creates an account with its first payer."""
    address = email(args.email)
    name = text(args.name, "name", MAX_NAME)
    services = [text(s, "service", MAX_SERVICE) for s in args.service or []]
    async with connected(settings) as conn:
        same_email = await account_db.find_account_ids(conn, email=address)
        try:
            account_id, payment_code = await account_db.create_account(
                conn,
                email=address,
                name=name,
                currency=settings.currency,
                services=services,
            )
        except CurrencyMismatch as exc:
            raise currency_mismatch(exc, settings) from exc
    data: dict[str, object] = {"account_id": account_id, "payment_code": payment_code}
    text_out = f"account_id: {account_id}\npayment_code: {payment_code}"
    if same_email:
        # Allowed (one person may hold several cabinets), but more often a mistake worth a look.
        others = ", ".join(str(i) for i in same_email)
        data["warning"] = f"{address} already owns account(s) {others}"
        data["same_email_accounts"] = same_email
        print(f"tolem: warning: {data['warning']}; `tolem payer add ID` adds a code to one", file=sys.stderr)
    emit(args, data, text_out)
    return 0


async def cmd_payer_add(args: argparse.Namespace, settings: Settings) -> int:
    """Adds a payer (a new payment code) to an account."""
    name = None if args.name is None else text(args.name, "name", MAX_NAME)
    async with connected(settings) as conn:
        try:
            payment_code = await account_db.add_payer(conn, args.account_id, name)
        except account_db.AccountNotFound as exc:
            raise UsageError(f"no account {args.account_id}") from exc
    emit(args, {"account_id": args.account_id, "payment_code": payment_code}, f"payment_code: {payment_code}")
    return 0


def _account_text(view: account_db.AccountView, zone: ZoneInfo) -> str:
    # The deployment's zone with its offset, as `tolem journal` shows times.
    lines = [
        f"account {view.id}  {view.name} <{view.email}>  {view.status}",
        f"billing id: {view.external_ref or '-'}",
        f"balance: {format_amount(view.balance_minor)} {view.currency}",
        "payers:",
        *(
            f"  {p.payment_code}  {p.name} ({p.origin})"
            + (f"  billing id {p.external_ref}" if p.external_ref else "")
            for p in view.payers
        ),
        f"services: {', '.join(view.services) or '-'}",
        f"last payments (times in {zone.key}):",
        *(
            f"  {local_time(p.created_at, zone)}  {p.provider}  {p.external_id}  "
            f"{format_amount(p.amount_minor)} {p.currency}  {p.state}"
            for p in view.payments
        ),
    ]
    if not view.payments:
        lines.append("  none")
    return "\n".join(lines)


async def cmd_account_show(args: argparse.Namespace, settings: Settings) -> int:
    """The support lookup: by id, code, email or service."""
    keys = [
        k for k in ("account_id", "code", "email", "service", "billing_id") if getattr(args, k) is not None
    ]
    if len(keys) != 1:
        raise UsageError("give exactly one of ACCOUNT_ID, --code, --email, --service, --billing-id")
    payment_code = None if args.code is None else code(args.code)
    async with connected(settings) as conn:
        ids = await account_db.find_account_ids(
            conn,
            account_id=args.account_id,
            code=payment_code,
            email=args.email,
            service=args.service,
            external_ref=args.billing_id,
        )
        views = [await account_db.load_account(conn, i) for i in ids]
    if not views:
        raise UsageError("no matching account")
    zone = ZoneInfo(settings.timezone)
    emit(args, [asdict(v) for v in views], "\n\n".join(_account_text(v, zone) for v in views))
    return 0


async def _set_status(args: argparse.Namespace, settings: Settings, status: AccountStatus) -> int:
    async with connected(settings) as conn:
        try:
            await account_db.set_status(conn, args.account_id, status)
        except account_db.AccountNotFound as exc:
            raise UsageError(f"no account {args.account_id}") from exc
    emit(args, {"account_id": args.account_id, "status": str(status)}, f"account {args.account_id} {status}")
    return 0


async def cmd_account_block(args: argparse.Namespace, settings: Settings) -> int:
    """Blocks an account: its codes stop accepting payments."""
    return await _set_status(args, settings, AccountStatus.BLOCKED)


async def cmd_account_unblock(args: argparse.Namespace, settings: Settings) -> int:
    """Unblocks an account."""
    return await _set_status(args, settings, AccountStatus.ACTIVE)


def register(commands: Commands, common: Parser) -> None:
    """`tolem account create|show|block|unblock|import` and `tolem payer add`."""
    account = commands.add_parser("account", parents=[common], help="customer accounts")
    a_cmds = account.add_subparsers(dest="account_command", required=True, parser_class=Parser)
    create = a_cmds.add_parser(
        "create",
        parents=[common],
        help="create an account with its first payer; prints the account id and payment code",
        description="Creates an account (balance 0 in TOLEM_CURRENCY) and its first payer, whose "
        "payment code the customer types at the kiosk.",
    )
    create.add_argument(
        "--email", required=True, help="contact email; support finds the account by it (warned when taken)"
    )
    create.add_argument(
        "--name", required=True, help='full name as in the cabinet ("Asanov Asan"); the first payer\'s name'
    )
    create.add_argument(
        "--service",
        action="append",
        metavar="NAME",
        help="a hosted service (domain, server) support can find the account by; repeat for several",
    )
    create.set_defaults(run=cmd_account_create)
    show = a_cmds.add_parser(
        "show",
        parents=[common],
        help="balance, payers and codes, last payments: by id, code, email, service or billing id",
        description="Shows the accounts matching exactly one key: balance, payers and their codes, "
        "services, last payments (times in TOLEM_TIMEZONE).",
    )
    show.add_argument("account_id", metavar="ACCOUNT_ID", nargs="?", type=int, help="the account's id")
    show.add_argument("--code", help="a payment code (spaces ignored)")
    show.add_argument("--email", help="the contact email (case-blind)")
    show.add_argument("--service", metavar="NAME", help="a service name (case-blind)")
    show.add_argument("--billing-id", metavar="REF", help="the billing's client id the account is bound to")
    show.set_defaults(run=cmd_account_show)
    for verb, run, summary in (
        ("block", cmd_account_block, "block an account: its codes stop accepting payments"),
        ("unblock", cmd_account_unblock, "let a blocked account be paid again"),
    ):
        sub = a_cmds.add_parser(verb, parents=[common], help=summary, description=f"{summary}.")
        sub.add_argument("account_id", metavar="ACCOUNT_ID", type=int, help="the account's id")
        sub.set_defaults(run=run)
    imports.register(a_cmds, common)

    payer = commands.add_parser("payer", parents=[common], help="payers and their codes")
    pay_cmds = payer.add_subparsers(dest="payer_command", required=True, parser_class=Parser)
    padd = pay_cmds.add_parser(
        "add",
        parents=[common],
        help="add a payer to an account: a new payment code; prints it",
        description="Adds a payer (a person or company paying into the account) with a new payment "
        "code; codes are never changed or reused.",
    )
    padd.add_argument("account_id", metavar="ACCOUNT_ID", type=int, help="the account paid into")
    padd.add_argument("--name", help="the payer's name (default: the account's name)")
    padd.set_defaults(run=cmd_payer_add)
