"""`tolem audit`: a sound ledger passes; each kind of damage is found and named."""

import asyncpg
import pytest

from tests.cli.conftest import Cli
from tests.conftest import Factory
from tolem.core.model import PayCommand
from tolem.core.service import PaymentService
from tolem.db.audit import audit, load_checks


async def _seed(service: PaymentService, factory: Factory) -> None:
    provider = await factory.provider()
    _, code = await factory.account()
    await service.pay(provider, PayCommand("a", code, 1000))
    await service.pay(provider, PayCommand("b", code, 2000))
    await service.cancel(provider, external_id="b")


async def _damage(pool: asyncpg.Pool, *statements: str) -> None:
    """Edits behind the triggers' back, as only a superuser could."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL session_replication_role = replica")
        for statement in statements:
            await conn.execute(statement)


async def _repair(pool: asyncpg.Pool, *statements: str) -> None:
    await _damage(pool, *statements)


def test_checks_file_names_every_check() -> None:
    """The invariants file parses into the named checks the audit reports by."""
    names = [c.name for c in load_checks()]
    assert names == [
        "balance_mismatch",
        "ledger_not_balanced",
        "transfer_currency_mismatch",
        "payment_currency_mismatch",
        "transfers_do_not_match_state",
        "transfer_accounts_mismatch",
        "reversal_mismatch",
        "transfer_changed",
        "protection_disabled",
    ]


async def test_sound_ledger_passes(service: PaymentService, factory: Factory, pool: asyncpg.Pool) -> None:
    """Pays, a cancel and nothing else: no violations, and progress reported for every check."""
    await _seed(service, factory)
    seen: list[str] = []
    async with pool.acquire() as conn:
        assert await audit(conn, lambda name, count, seconds: seen.append(name)) == []
    assert seen == [c.name for c in load_checks()]


@pytest.mark.parametrize(
    ("damage", "repair", "expected"),
    [
        (
            ["UPDATE ledger_accounts SET balance_minor = balance_minor + 1 WHERE kind = 'customer'"],
            ["UPDATE ledger_accounts SET balance_minor = balance_minor - 1 WHERE kind = 'customer'"],
            {"balance_mismatch"},
        ),
        (
            ["UPDATE transfers SET amount_minor = amount_minor + 5 WHERE code = 'topup' AND payment_id = 1"],
            ["UPDATE transfers SET amount_minor = amount_minor - 5 WHERE code = 'topup' AND payment_id = 1"],
            {"balance_mismatch", "transfers_do_not_match_state", "transfer_changed"},
        ),
        (
            ["UPDATE payments SET state = 'credited', cancelled_at = NULL WHERE external_id = 'b'"],
            ["UPDATE payments SET state = 'reversed', cancelled_at = now() WHERE external_id = 'b'"],
            {"transfers_do_not_match_state"},
        ),
        (
            # What a deployment started with another TOLEM_CURRENCY used to write: KGS money on
            # accounts held in UZS. The ledger as a whole still sums to zero.
            ["UPDATE ledger_accounts SET currency = 'UZS' WHERE kind = 'customer'"],
            ["UPDATE ledger_accounts SET currency = 'KGS' WHERE kind = 'customer'"],
            {"ledger_not_balanced", "transfer_currency_mismatch", "payment_currency_mismatch"},
        ),
        (
            ["ALTER TABLE payments DISABLE TRIGGER tr__payments__currency"],
            ["ALTER TABLE payments ENABLE TRIGGER tr__payments__currency"],
            {"protection_disabled"},
        ),
        (
            ["ALTER TABLE transfers DISABLE TRIGGER tr__transfers__append_only"],
            ["ALTER TABLE transfers ENABLE TRIGGER tr__transfers__append_only"],
            {"protection_disabled"},
        ),
    ],
)
async def test_damage_is_found(
    service: PaymentService,
    factory: Factory,
    pool: asyncpg.Pool,
    damage: list[str],
    repair: list[str],
    expected: set[str],
) -> None:
    """Each kind of tampering is reported under the check that guards against it."""
    await _seed(service, factory)
    await _damage(pool, *damage)
    try:
        async with pool.acquire() as conn:
            found = {v.check for v in await audit(conn)}
    finally:
        await _repair(pool, *repair)
    assert found == expected


async def test_edited_transfer_is_found_by_checksum(
    service: PaymentService,
    factory: Factory,
    pool: asyncpg.Pool,
) -> None:
    """Changing a transfer's timestamp moves no money but still breaks its checksum."""
    await _seed(service, factory)
    await _damage(pool, "UPDATE transfers SET created_at = created_at - interval '1 day' WHERE id = 1")
    try:
        async with pool.acquire() as conn:
            found = await audit(conn)
    finally:
        await _repair(pool, "UPDATE transfers SET created_at = created_at + interval '1 day' WHERE id = 1")
    assert [(v.check, v.subject) for v in found] == [("transfer_changed", "1")]


async def test_cli_audit_exit_codes(
    cli: Cli, service: PaymentService, factory: Factory, pool: asyncpg.Pool
) -> None:
    """`tolem audit` exits 0 on a sound ledger and 1 with a readable list when damaged."""
    await _seed(service, factory)
    clean = await cli("audit")
    assert (clean.code, clean.out.strip()) == (0, "ledger ok")
    assert "audit balance_mismatch: 0 violation(s)" in clean.err
    await _damage(
        pool, "UPDATE ledger_accounts SET balance_minor = balance_minor + 7 WHERE kind = 'customer'"
    )
    try:
        damaged = await cli("audit", "--json")
    finally:
        await _repair(
            pool, "UPDATE ledger_accounts SET balance_minor = balance_minor - 7 WHERE kind = 'customer'"
        )
    assert damaged.code == 1
    report = damaged.json()
    assert report["ok"] is False
    assert report["violations"][0]["check"] == "balance_mismatch"
    assert "entries sum to 1000" in report["violations"][0]["detail"]


async def test_cli_audit_sums_each_currency_apart(
    cli: Cli, service: PaymentService, factory: Factory, pool: asyncpg.Pool
) -> None:
    """KGS credited to a UZS account: `tolem audit` names each currency's non-zero sum and exits 1."""
    await _seed(service, factory)
    mix = "UPDATE ledger_accounts SET currency = 'UZS' WHERE kind = 'customer'"
    await _damage(pool, mix)
    try:
        damaged = await cli("audit", "--json")
    finally:
        await _repair(pool, "UPDATE ledger_accounts SET currency = 'KGS' WHERE kind = 'customer'")
    assert damaged.code == 1
    sums = {
        v["subject"]: v["detail"] for v in damaged.json()["violations"] if v["check"] == "ledger_not_balanced"
    }
    assert sums == {"KGS": "KGS entries sum to -1000", "UZS": "UZS entries sum to 1000"}
