"""`tolem reconcile list|resolve|credit`: the discrepancies a registry's diff recorded, shown and
worked off (see tolem.cli.reconcile for the command as a whole)."""

import argparse
import sys
from dataclasses import asdict
from typing import Any

from tolem.cli.common import UsageError, connected, emit, operator_name, shown_amount
from tolem.cli.report import provider_zone
from tolem.core import errors
from tolem.core.money import format_amount
from tolem.core.service import PaymentService
from tolem.db import reconcile as reconcile_db
from tolem.db.pool import create_pool
from tolem.db.store import PgStore
from tolem.reconcile.credit import NotCreditable, credit_missing
from tolem.settings import Settings


def _discrepancy_dict(d: reconcile_db.Discrepancy) -> dict[str, Any]:
    data = asdict(d)
    data["theirs_amount"] = shown_amount(d.theirs_amount_minor)
    data["ours_amount"] = shown_amount(d.ours_amount_minor)
    data["open"] = d.open
    return data


def _discrepancy_text(d: reconcile_db.Discrepancy) -> str:
    sides = []
    if d.theirs_amount_minor is not None or d.theirs_code or d.theirs_state:
        sides.append(
            f"theirs {shown_amount(d.theirs_amount_minor) or '-'} {d.theirs_code or '-'} "
            f"{d.theirs_state or '-'}"
        )
    if d.ours_amount_minor is not None or d.ours_code or d.ours_state:
        sides.append(
            f"ours {shown_amount(d.ours_amount_minor) or '-'} {d.ours_code or '-'} {d.ours_state or '-'}"
        )
    head = f"#{d.id:<6} {d.provider:<12} {d.business_day}  {d.kind:<15} txn {d.txn:<20} {'; '.join(sides)}"
    if d.open:
        return head + "  [open]"
    credited = f", payment {d.credited_payment_id}" if d.credited_payment_id else ""
    when = f"{d.resolved_at:%Y-%m-%d %H:%M} UTC"
    return f"{head}  [resolved by {d.resolved_by} at {when}{credited}: {d.resolution_note}]"


async def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    """Discrepancies, newest first."""
    if not 0 < args.limit <= 10_000:
        raise UsageError("--limit must be 1 to 10000")
    async with connected(settings) as conn:
        if args.provider is not None:
            await provider_zone(conn, args.provider, settings)
        found = await reconcile_db.list_discrepancies(
            conn, provider=args.provider, include_resolved=args.all, limit=args.limit
        )
    nothing = "no discrepancies" if args.all else "no open discrepancies"
    emit(args, [_discrepancy_dict(d) for d in found], "\n".join(map(_discrepancy_text, found)) or nothing)
    return 0


def _resolution_error(exc: reconcile_db.AlreadyResolved) -> UsageError:
    d = exc.discrepancy
    return UsageError(
        f"discrepancy {d.id} was already resolved by {d.resolved_by} at "
        f"{d.resolved_at:%Y-%m-%d %H:%M} UTC: {d.resolution_note}"
    )


async def cmd_resolve(args: argparse.Namespace, settings: Settings) -> int:
    """Resolves an open discrepancy with a note."""
    operator = operator_name(args.operator)
    async with connected(settings) as conn:
        try:
            done = await reconcile_db.resolve(conn, args.id, operator=operator, note=args.note)
        except ValueError as exc:
            raise UsageError(str(exc)) from exc
        except reconcile_db.DiscrepancyNotFound as exc:
            raise UsageError(f"no discrepancy {args.id}") from exc
        except reconcile_db.AlreadyResolved as exc:
            raise _resolution_error(exc) from exc
    emit(args, _discrepancy_dict(done), f"resolved: {_discrepancy_text(done)}")
    return 0


async def cmd_credit(args: argparse.Namespace, settings: Settings) -> int:
    """Credits a missing payment from the registry through the idempotent pay, then resolves."""
    operator = operator_name(args.operator)
    assert settings.database_url is not None
    async with connected(settings) as conn:
        pool = await create_pool(
            settings.database_url.get_secret_value(), size=1, deadline=settings.request_deadline
        )
        store = PgStore(pool, lanes=1)
        try:
            done = await credit_missing(
                conn, PaymentService(store), args.id, operator=operator, note=args.note
            )
        except ValueError as exc:
            raise UsageError(str(exc)) from exc
        except reconcile_db.DiscrepancyNotFound as exc:
            raise UsageError(f"no discrepancy {args.id}") from exc
        except reconcile_db.AlreadyResolved as exc:
            raise _resolution_error(exc) from exc
        except NotCreditable as exc:
            raise UsageError(f"{exc}; resolve it with a note instead") from exc
        except errors.DomainError as exc:
            raise UsageError(
                f"not credited ({exc.code}: {exc.message}); discrepancy {args.id} stays open"
            ) from exc
        except errors.TemporarilyUnavailable as exc:
            print(
                f"tolem: error: database unavailable, outcome unknown ({exc}); run the same command "
                "again: it credits at most once",
                file=sys.stderr,
            )
            return 1
        finally:
            await store.close()
            await pool.close()
    payment = done.payment
    said = "already paid, nothing credited again" if done.replayed else "credited"
    emit(
        args,
        {
            "credited": not done.replayed,
            "payment_id": payment.id,
            "txn": payment.external_id,
            "amount_minor": payment.amount_minor,
            "amount": format_amount(payment.amount_minor),
            "currency": payment.currency,
            "discrepancy": _discrepancy_dict(done.discrepancy),
        },
        f"{said}: payment {payment.id}, txn {payment.external_id}, "
        f"{format_amount(payment.amount_minor)} {payment.currency}\n"
        f"resolved: {_discrepancy_text(done.discrepancy)}",
    )
    return 0
