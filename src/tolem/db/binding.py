"""Accounts and payers bound to the billing's own ids, created or found by them, idempotently.

The billing (BILLmanager, WHMCS) knows its client and its payer (profile) ids, not ours. Its
cabinet calls these on every "pay by terminal", so a repeat must find what the first call
made. The unique keys on accounts.external_ref and payers.external_ref decide a race: the
loser's insert waits for the winner's commit, fails on the key, and reads the winner's row.
"""

from dataclasses import dataclass

import asyncpg

from tolem.db import accounts as account_db


@dataclass(frozen=True, slots=True)
class Bound:
    """The account (and the payer's code) bound to a billing id; whether this call created it."""

    account_id: int
    payment_code: str
    created: bool


class PayerRefTaken(Exception):
    """The payer's billing id is bound to a payer of another account."""

    def __init__(self, payer_ref: str, account_id: int) -> None:
        super().__init__(f"payer {payer_ref} belongs to account {account_id}")
        self.account_id = account_id


def _lost_race(exc: asyncpg.UniqueViolationError, constraint: str) -> bool:
    return getattr(exc, "constraint_name", None) == constraint


async def _first_code(conn: asyncpg.Connection, account_id: int) -> str:
    code = await conn.fetchval(
        "SELECT payment_code FROM payers WHERE account_id = $1 ORDER BY id LIMIT 1", account_id
    )
    return str(code)


async def bind_account(
    conn: asyncpg.Connection,
    ref: str,
    *,
    email: str,
    name: str,
    services: list[str],
    currency: str,
) -> Bound:
    """Creates the account of billing client `ref`, or updates its email, name and services.

    Raises CurrencyMismatch (as account creation does).
    """
    for _ in range(2):
        found = await conn.fetchval("SELECT id FROM accounts WHERE external_ref = $1", ref)
        if found is None:
            try:
                account_id, code = await account_db.create_account(
                    conn, email=email, name=name, currency=currency, services=services, external_ref=ref
                )
            except asyncpg.UniqueViolationError as exc:
                if not _lost_race(exc, "uq__accounts__external_ref"):
                    raise
                continue  # a twin call committed it first: update that one
            return Bound(account_id=account_id, payment_code=code, created=True)
        async with conn.transaction():
            await conn.execute(
                "UPDATE accounts SET email = $2, name = $3 "
                "WHERE id = $1 AND (email, name) IS DISTINCT FROM ($2, $3)",
                found,
                email,
                name,
            )
            await account_db.add_services(conn, found, services)
        return Bound(account_id=int(found), payment_code=await _first_code(conn, found), created=False)
    raise AssertionError("the account was neither found nor created")


async def bind_payer(conn: asyncpg.Connection, account_ref: str, payer_ref: str, name: str | None) -> Bound:
    """Creates payer `payer_ref` of billing client `account_ref` once; every repeat finds it.

    Raises AccountNotFound (no account bound to `account_ref`) and PayerRefTaken.
    """
    account_id = await conn.fetchval("SELECT id FROM accounts WHERE external_ref = $1", account_ref)
    if account_id is None:
        raise account_db.AccountNotFound(account_ref)
    for _ in range(2):
        row = await conn.fetchrow(
            "SELECT account_id, payment_code FROM payers WHERE external_ref = $1", payer_ref
        )
        if row is not None:
            if row["account_id"] != account_id:
                raise PayerRefTaken(payer_ref, row["account_id"])
            return Bound(account_id=int(account_id), payment_code=row["payment_code"], created=False)
        try:
            code = await account_db.add_payer(conn, account_id, name, external_ref=payer_ref)
        except asyncpg.UniqueViolationError as exc:
            if not _lost_race(exc, "uq__payers__external_ref"):
                raise
            continue
        return Bound(account_id=int(account_id), payment_code=code, created=True)
    raise AssertionError("the payer was neither found nor created")
