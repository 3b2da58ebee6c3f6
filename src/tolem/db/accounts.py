"""Accounts, payers and services: what support and the CLI create and look up."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import asyncpg

from tolem.core.model import AccountStatus
from tolem.core.payment_codes import generate_code
from tolem.db.ledger import require_currency

# A clash among 10^9 random codes is rare; eight in a row would mean the space is nearly full.
_CODE_ATTEMPTS: Final = 8


class AccountNotFound(LookupError):
    """No account with that id."""


@dataclass(frozen=True, slots=True)
class PayerView:
    """A payer and its code."""

    id: int
    name: str
    payment_code: str
    origin: str
    created_at: datetime
    external_ref: str | None = None  # the billing's payer (profile) id, when bound


@dataclass(frozen=True, slots=True)
class PaymentView:
    """A payment as support sees it."""

    id: int
    provider: str
    external_id: str
    payment_code: str
    amount_minor: int
    currency: str
    state: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class AccountView:
    """Everything support reads back on the phone."""

    id: int
    email: str
    name: str
    status: str
    balance_minor: int
    currency: str
    created_at: datetime
    payers: list[PayerView]
    services: list[str]
    payments: list[PaymentView]
    external_ref: str | None = None  # the billing's client id, when bound


async def _insert_payer(
    conn: asyncpg.Connection,
    account_id: int,
    name: str,
    code: str | None,
    origin: str,
    *,
    external_ref: str | None = None,
) -> str:
    """Inserts a payer with `code`, or with fresh random codes until one is unused."""
    if code is not None:
        await conn.execute(
            "INSERT INTO payers (account_id, payment_code, name, origin, external_ref) "
            "VALUES ($1, $2, $3, $4, $5)",
            account_id,
            code,
            name,
            origin,
            external_ref,
        )
        return code
    for _ in range(_CODE_ATTEMPTS):
        candidate = generate_code()
        # Only a clash of codes is retried; a taken billing id is the caller's to handle.
        inserted = await conn.fetchval(
            """INSERT INTO payers (account_id, payment_code, name, origin, external_ref)
               VALUES ($1, $2, $3, 'issued', $4)
               ON CONFLICT ON CONSTRAINT uq__payers__payment_code DO NOTHING
               RETURNING payment_code""",
            account_id,
            candidate,
            name,
            external_ref,
        )
        if inserted is not None:
            return str(inserted)
    raise RuntimeError("could not find an unused payment code")


async def create_account(
    conn: asyncpg.Connection,
    *,
    email: str,
    name: str,
    currency: str,
    services: list[str] = [],  # noqa: B006 - never mutated
    status: AccountStatus = AccountStatus.ACTIVE,
    payment_code: str | None = None,
    external_ref: str | None = None,
) -> tuple[int, str]:
    """Creates an account, its ledger account and first payer; returns (id, payment code).

    Raises CurrencyMismatch when the database holds money in another currency.
    """
    async with conn.transaction():
        await require_currency(conn, currency)
        ledger_id = await conn.fetchval(
            "INSERT INTO ledger_accounts (kind, currency, balance_minor) "
            "VALUES ('customer', $1, 0) RETURNING id",
            currency,
        )
        account_id = await conn.fetchval(
            "INSERT INTO accounts (email, name, status, ledger_account_id, external_ref) "
            "VALUES ($1, $2, $3, $4, $5) RETURNING id",
            email,
            name,
            status,
            ledger_id,
            external_ref,
        )
        origin = "issued" if payment_code is None else "imported"
        code = await _insert_payer(conn, account_id, name, payment_code, origin)
        await add_services(conn, account_id, services)
    return int(account_id), code


@dataclass(frozen=True, slots=True)
class CodeOwner:
    """The account a payment code already belongs to, as an import compares it with a row."""

    account_id: int
    email: str
    external_ref: str | None


async def code_owner(conn: asyncpg.Connection, code: str) -> CodeOwner | None:
    """Who holds `code`, or None when nobody does."""
    row = await conn.fetchrow(
        """SELECT a.id, a.email, a.external_ref
             FROM payers py JOIN accounts a ON a.id = py.account_id
            WHERE py.payment_code = $1""",
        code,
    )
    if row is None:
        return None
    return CodeOwner(account_id=row["id"], email=row["email"], external_ref=row["external_ref"])


async def account_by_ref(conn: asyncpg.Connection, external_ref: str) -> int | None:
    """The account imported under `external_ref` from an older billing, if any."""
    found = await conn.fetchval("SELECT id FROM accounts WHERE external_ref = $1", external_ref)
    return None if found is None else int(found)


async def add_services(conn: asyncpg.Connection, account_id: int, services: list[str]) -> None:
    """Attaches service names to an account (existing ones are kept)."""
    for service in services:
        await conn.execute(
            "INSERT INTO services (account_id, name) VALUES ($1, $2) "
            "ON CONFLICT ON CONSTRAINT uq__services__account_id__name DO NOTHING",
            account_id,
            service,
        )


async def add_payer(
    conn: asyncpg.Connection,
    account_id: int,
    name: str | None = None,
    *,
    payment_code: str | None = None,
    external_ref: str | None = None,
) -> str:
    """A new payer (and so a new payment code) for an existing account."""
    async with conn.transaction():
        row = await conn.fetchrow("SELECT name FROM accounts WHERE id = $1 FOR SHARE", account_id)
        if row is None:
            raise AccountNotFound(account_id)
        origin = "issued" if payment_code is None else "imported"
        return await _insert_payer(
            conn, account_id, name or row["name"], payment_code, origin, external_ref=external_ref
        )


async def set_status(conn: asyncpg.Connection, account_id: int, status: AccountStatus) -> None:
    """Blocks or unblocks an account."""
    done = await conn.execute(
        "UPDATE accounts SET status = $2, updated_at = now() WHERE id = $1",
        account_id,
        status,
    )
    if done == "UPDATE 0":
        raise AccountNotFound(account_id)


async def account_exists(conn: asyncpg.Connection, account_id: int) -> bool:
    """Whether there is an account with this id."""
    return await conn.fetchval("SELECT 1 FROM accounts WHERE id = $1", account_id) is not None


async def find_account_ids(
    conn: asyncpg.Connection,
    *,
    account_id: int | None = None,
    code: str | None = None,
    email: str | None = None,
    service: str | None = None,
    external_ref: str | None = None,
) -> list[int]:
    """Ids of accounts matching exactly one of the given keys (email and service case-blind)."""
    if account_id is not None:
        rows = await conn.fetch("SELECT id FROM accounts WHERE id = $1", account_id)
    elif external_ref is not None:
        rows = await conn.fetch("SELECT id FROM accounts WHERE external_ref = $1", external_ref)
    elif code is not None:
        rows = await conn.fetch("SELECT account_id AS id FROM payers WHERE payment_code = $1", code)
    elif email is not None:
        rows = await conn.fetch(
            "SELECT id FROM accounts WHERE lower(email) = lower($1) ORDER BY id",
            email,
        )
    elif service is not None:
        rows = await conn.fetch(
            "SELECT DISTINCT account_id AS id FROM services WHERE lower(name) = lower($1) "
            "ORDER BY account_id",
            service,
        )
    else:
        raise ValueError("one lookup key is required")
    return [int(row["id"]) for row in rows]


async def load_account(conn: asyncpg.Connection, account_id: int, *, payments: int = 10) -> AccountView:
    """The account with its balance, payers, services and latest payments."""
    row = await conn.fetchrow(
        """SELECT a.id, a.email, a.name, a.status, a.created_at, a.external_ref, l.balance_minor,
                  l.currency
             FROM accounts a JOIN ledger_accounts l ON l.id = a.ledger_account_id
            WHERE a.id = $1""",
        account_id,
    )
    if row is None:
        raise AccountNotFound(account_id)
    payers = await conn.fetch(
        "SELECT id, name, payment_code, origin, created_at, external_ref FROM payers "
        "WHERE account_id = $1 ORDER BY id",
        account_id,
    )
    services = await conn.fetch(
        "SELECT name FROM services WHERE account_id = $1 ORDER BY name",
        account_id,
    )
    recent = await account_payments(conn, account_id, limit=payments)
    return AccountView(
        id=row["id"],
        email=row["email"],
        name=row["name"],
        status=row["status"],
        balance_minor=row["balance_minor"],
        currency=row["currency"],
        created_at=row["created_at"],
        payers=[PayerView(**_fields(p)) for p in payers],
        services=[s["name"] for s in services],
        payments=recent,
        external_ref=row["external_ref"],
    )


async def account_payments(
    conn: asyncpg.Connection,
    account_id: int,
    *,
    limit: int,
    before_id: int | None = None,
) -> list[PaymentView]:
    """Payments of an account, newest first, paged by id."""
    rows = await conn.fetch(
        """SELECT p.id, pr.name AS provider, p.external_id, py.payment_code, p.amount_minor,
                  p.currency, p.state, p.created_at
             FROM payments p
             JOIN providers pr ON pr.id = p.provider_id
             JOIN payers py ON py.id = p.payer_id
            WHERE p.account_id = $1 AND ($2::bigint IS NULL OR p.id < $2)
            ORDER BY p.id DESC LIMIT $3""",
        account_id,
        before_id,
        limit,
    )
    return [PaymentView(**_fields(r)) for r in rows]


def _fields(record: Any) -> dict[str, Any]:
    return dict(record.items())
