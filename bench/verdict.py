"""The verdict of a chaos run: what clients were told against what the ledger holds.

`Figures` counts a scenario's requests, acknowledgements and credits and the four numbers that
must be zero; `settle` fills them from the database, `report` prints them.
"""

import asyncio
from dataclasses import dataclass, field

import asyncpg

from bench.aggregators import OK, RETRY, Answer, Caller
from tolem.db.audit import audit


@dataclass
class Figures:
    """What a scenario counts; the promise is that the last four are zero."""

    name: str
    requests: int = 0
    acknowledged: int = 0
    credits: int = 0
    doubles: int = 0
    lost: int = 0
    wrong_answers: int = 0
    audit_violations: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """All promised zeros are zeros."""
        return not (self.doubles or self.lost or self.wrong_answers or self.audit_violations)


async def credits_by_txn(dsn: str) -> dict[str, int]:
    """Top-up transfers per provider transaction id (reversals aside)."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            """SELECT p.external_id, count(t.id) AS credits
                 FROM payments p LEFT JOIN transfers t ON t.payment_id = p.id AND t.code = 'topup'
                GROUP BY p.external_id""",
        )
        return {r["external_id"]: int(r["credits"]) for r in rows}
    finally:
        await conn.close()


async def count_audit(dsn: str) -> int:
    """Violations `tolem audit` finds."""
    conn = await asyncpg.connect(dsn)
    try:
        return len(await audit(conn))
    finally:
        await conn.close()


async def settle(figures: Figures, dsn: str, acknowledged: dict[str, Answer], all_ids: set[str]) -> None:
    """Compares what clients were told with what the ledger holds."""
    credits = await credits_by_txn(dsn)
    figures.acknowledged = len(acknowledged)
    figures.credits = sum(credits.values())
    figures.doubles = sum(1 for n in credits.values() if n > 1)
    figures.lost = sum(1 for txn in acknowledged if credits.get(txn, 0) != 1)
    missing = sum(1 for txn in all_ids if credits.get(txn, 0) != 1)
    if missing:
        figures.notes.append(f"{missing} id(s) never credited after resending")
        figures.lost += missing if not acknowledged else 0
    figures.audit_violations = await count_audit(dsn)


async def resend_until_answered(
    kiosk: Caller,
    pending: dict[str, tuple[str, str]],
    acknowledged: dict[str, Answer],
    figures: Figures,
    attempts: int = 50,
) -> None:
    """Clients resend everything they got no final answer for, as aggregators do for 24 h."""
    for _ in range(attempts):
        if not pending:
            return
        answers = await asyncio.gather(*(kiosk.pay(t, c, a) for t, (c, a) in pending.items()))
        for txn, answer in zip(list(pending), answers, strict=True):
            if answer.result == OK:
                first = acknowledged.setdefault(txn, answer)
                if first.fingerprint != answer.fingerprint:
                    figures.wrong_answers += 1
                del pending[txn]
            elif answer.result not in (None, RETRY):
                figures.wrong_answers += 1
                del pending[txn]
        await asyncio.sleep(0.2)


def report(all_figures: list[Figures]) -> None:
    """One table, then notes."""
    header = ("scenario", "requests", "acked", "credits", "doubles", "lost", "wrong", "audit")
    print("  ".join(f"{h:>16}" if i == 0 else f"{h:>8}" for i, h in enumerate(header)))
    for f in all_figures:
        cells = (
            f.name,
            f.requests,
            f.acknowledged,
            f.credits,
            f.doubles,
            f.lost,
            f.wrong_answers,
            f.audit_violations,
        )
        print("  ".join(f"{c:>16}" if i == 0 else f"{c:>8}" for i, c in enumerate(cells)))
    for f in all_figures:
        for note in f.notes:
            print(f"  {f.name}: {note}")
