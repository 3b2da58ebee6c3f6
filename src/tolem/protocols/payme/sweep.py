"""Voids Payme reservations older than 12 hours that nobody performs or cancels any more.

PerformTransaction and a repeated CreateTransaction already apply the 12-hour rule to the
transaction they touch; the sweep makes CheckTransaction and GetStatement show the others as
cancelled by timeout (state -1, reason 4) too. Each batch is one short transaction of at most
`batch` rows taken with SKIP LOCKED, so any number of sweepers (one per host, or cron runs that
overlap) may run at once: they share the work and each row is voided once. `tolem sweep`
(cli/sweep.py) is the process around it.
"""

from datetime import datetime
from typing import Final

from tolem.core.model import Provider
from tolem.core.service import PaymentService
from tolem.protocols.payme.adapter import TRANSACTION_TIMEOUT
from tolem.protocols.payme.codes import REASON_TIMEOUT

# A batch locks this many rows for a few milliseconds; small enough never to hold up a perform.
DEFAULT_BATCH: Final = 500
# A pass stops after this many full batches even if more are stale (the next pass goes on), so
# one pass is bounded in time however large a backlog is.
MAX_BATCHES_PER_PASS: Final = 200


async def sweep_provider(
    service: PaymentService,
    provider: Provider,
    now: datetime,
    *,
    batch: int = DEFAULT_BATCH,
    max_batches: int = MAX_BATCHES_PER_PASS,
) -> int:
    """Voids the provider's reservations whose Payme time is over 12 h before `now`; how many."""
    before = now - TRANSACTION_TIMEOUT
    total = 0
    for _ in range(max_batches):
        voided = await service.expire_reservations(
            provider, before=before, reason=REASON_TIMEOUT, limit=batch
        )
        total += voided
        if voided < batch:
            break
    return total
