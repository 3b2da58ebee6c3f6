"""Crediting a payment that the aggregator's registry lists and we never received.

The only way in is the gateway's own: PaymentService.pay with the registry's transaction id,
payment code and amount, so tolem_accept's unique key (provider, transaction id) decides once
and for all. Run twice, or together with the aggregator's late retry, it credits once; the
others replay the same payment. Only then is the discrepancy resolved, naming that payment.
"""

from dataclasses import dataclass
from typing import Final

import asyncpg

from tolem.core.model import PayCommand, Payment
from tolem.core.service import PaymentService
from tolem.db import providers as provider_db
from tolem.db import reconcile as reconcile_db
from tolem.db import registries as registry_db

# What the resolution note says before the operator's own words.
_SAID_ROOM: Final = 200


class NotCreditable(Exception):
    """This discrepancy is not a paid registry line that we lack."""


@dataclass(frozen=True, slots=True)
class Credited:
    """The payment that now stands for the registry's line, and the resolved discrepancy."""

    payment: Payment
    replayed: bool
    discrepancy: reconcile_db.Discrepancy


async def credit_missing(
    conn: asyncpg.Connection,
    service: PaymentService,
    discrepancy_id: int,
    *,
    operator: str,
    note: str | None = None,
) -> Credited:
    """Credits a `missing_ours` discrepancy's registry line and resolves the discrepancy.

    Raises DiscrepancyNotFound, AlreadyResolved, NotCreditable, ValueError (operator or note),
    the payment's DomainError (UnknownCode, AccountBlocked, IdempotencyConflict, ...: nothing
    credited, the discrepancy stays open) and TemporarilyUnavailable (outcome unknown: run it
    again, the unique key makes that safe).
    """
    found = await reconcile_db.get_discrepancy(conn, discrepancy_id)
    if not found.open:
        raise reconcile_db.AlreadyResolved(found)
    if found.kind != "missing_ours":
        raise NotCreditable(f"discrepancy {found.id} is {found.kind}; only missing_ours can be credited")
    assert found.line_no is not None
    line = await registry_db.registry_line(conn, found.registry_id, found.line_no)
    if line.state != "paid":
        raise NotCreditable(f"the registry lists transaction {found.txn} as {line.state}, not paid")
    if line.payment_code is None:
        raise NotCreditable("the registry names no payment code for this transaction")
    # Checked before any money moves; the note gets a sentence naming the payment in front.
    operator, _ = reconcile_db.check_resolution(operator, note or "-")
    if note is not None and len(note.strip()) > reconcile_db.MAX_NOTE - _SAID_ROOM:
        raise ValueError(f"the note must be at most {reconcile_db.MAX_NOTE - _SAID_ROOM} characters")
    provider = await provider_db.get(conn, found.provider)
    result = await service.pay(
        provider,
        PayCommand(
            external_id=line.txn,
            payment_code=line.payment_code,
            amount_minor=line.amount_minor,
            provider_time=line.paid_at,
            provider_time_raw=line.paid_at_raw,
        ),
    )
    where = f"registry #{found.registry_id} line {found.line_no}"
    said = f"credited from {where} as payment {result.payment.id}"
    if result.replayed:
        said = f"already paid as payment {result.payment.id} ({where})"
    resolved = await reconcile_db.resolve(
        conn,
        found.id,
        operator=operator,
        note=f"{said}: {note}" if note else said,
        credited_payment_id=result.payment.id,
    )
    return Credited(payment=result.payment, replayed=result.replayed, discrepancy=resolved)
