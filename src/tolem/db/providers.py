"""Provider configuration: written by the CLI, read (and cached) by the gateway."""

from ipaddress import ip_network
from typing import Any, Final

import asyncpg

from tolem.core.model import Provider, WireProtocol
from tolem.db.ledger import require_currency

_SELECT: Final = """
SELECT id, name, protocol, enabled, allow_ips::text[] AS allow_ips, login, password_hash, secret,
       service_id, min_amount_minor, max_amount_minor, currency, timezone
  FROM providers
"""

# Columns `provider set` may change; the name, protocol and ledger account are for life.
SETTABLE: Final = frozenset(
    {
        "allow_ips",
        "login",
        "password_hash",
        "secret",
        "service_id",
        "min_amount_minor",
        "max_amount_minor",
        "timezone",
        "enabled",
    }
)


class ProviderNotFound(LookupError):
    """No provider with that name."""


class ProviderInUse(Exception):
    """The provider has history (calls, payments, registries): it may be disabled, not removed."""


def provider_from_row(row: Any) -> Provider:
    """A Provider from a row of _SELECT."""
    return Provider(
        id=row["id"],
        name=row["name"],
        protocol=WireProtocol(row["protocol"]),
        enabled=row["enabled"],
        allow_ips=tuple(ip_network(n, strict=False) for n in row["allow_ips"]),
        login=row["login"],
        password_hash=row["password_hash"],
        secret=row["secret"],
        service_id=row["service_id"],
        min_amount_minor=row["min_amount_minor"],
        max_amount_minor=row["max_amount_minor"],
        currency=row["currency"].strip(),
        timezone=row["timezone"],
    )


async def load_all(conn: asyncpg.Connection | asyncpg.Pool) -> dict[str, Provider]:
    """Every provider by name."""
    rows = await conn.fetch(_SELECT + " ORDER BY id")
    return {row["name"]: provider_from_row(row) for row in rows}


async def get(conn: asyncpg.Connection, name: str) -> Provider:
    """One provider by name."""
    row = await conn.fetchrow(_SELECT + " WHERE name = $1", name)
    if row is None:
        raise ProviderNotFound(name)
    return provider_from_row(row)


async def timezone_of(conn: asyncpg.Connection, name: str) -> str | None:
    """A provider's own time zone (None: it has none); ProviderNotFound when there is no such one."""
    row = await conn.fetchrow("SELECT timezone FROM providers WHERE name = $1", name)
    if row is None:
        raise ProviderNotFound(name)
    zone: str | None = row["timezone"]
    return zone


async def add(
    conn: asyncpg.Connection,
    *,
    name: str,
    protocol: str,
    currency: str,
    allow_ips: list[str],
    login: str | None,
    password_hash: str | None,
    secret: str | None,
    service_id: str | None,
    min_amount_minor: int | None,
    max_amount_minor: int | None,
    timezone: str | None,
) -> Provider:
    """Registers a provider with its own clearing ledger account.

    Raises CurrencyMismatch when the database holds money in another currency.
    """
    async with conn.transaction():
        await require_currency(conn, currency)
        ledger_id = await conn.fetchval(
            "INSERT INTO ledger_accounts (kind, currency) VALUES ('clearing', $1) RETURNING id",
            currency,
        )
        await conn.execute(
            """INSERT INTO providers (name, protocol, currency, allow_ips, login, password_hash,
                                      secret, service_id, min_amount_minor, max_amount_minor,
                                      timezone, clearing_ledger_account_id)
               VALUES ($1, $2, $3, $4::text[]::cidr[], $5, $6, $7, $8, $9, $10, $11, $12)""",
            name,
            protocol,
            currency,
            allow_ips,
            login,
            password_hash,
            secret,
            service_id,
            min_amount_minor,
            max_amount_minor,
            timezone,
            ledger_id,
        )
        return await get(conn, name)


async def update(conn: asyncpg.Connection, name: str, changes: dict[str, Any]) -> Provider:
    """Changes settable columns of a provider."""
    unknown = set(changes) - SETTABLE
    if unknown:
        raise ValueError(f"not settable: {', '.join(sorted(unknown))}")
    async with conn.transaction():
        for column, value in sorted(changes.items()):
            cast = "::text[]::cidr[]" if column == "allow_ips" else ""
            # Column names come from SETTABLE only; values are bound.
            done = await conn.execute(
                f"UPDATE providers SET {column} = $2{cast}, updated_at = now() WHERE name = $1",
                name,
                value,
            )
            if done == "UPDATE 0":
                raise ProviderNotFound(name)
        return await get(conn, name)


async def remove(conn: asyncpg.Connection, name: str) -> None:
    """Removes a provider that never received a call, with its (empty) clearing account.

    Raises ProviderNotFound, or ProviderInUse when any call of it was journaled or anything
    refers to it (payments, registries): its history must stay explainable.
    """
    async with conn.transaction():
        # The row lock makes a pay that is inserting a payment of this provider finish first
        # (its foreign key check holds a key-share lock), so the count below sees it.
        row = await conn.fetchrow(
            "SELECT id, clearing_ledger_account_id FROM providers WHERE name = $1 FOR UPDATE", name
        )
        if row is None:
            raise ProviderNotFound(name)
        calls = await conn.fetchval("SELECT count(*) FROM request_journal WHERE provider = $1", name)
        payments = await conn.fetchval("SELECT count(*) FROM payments WHERE provider_id = $1", row["id"])
        if calls or payments:
            raise ProviderInUse(f"{calls} journaled call(s), {payments} payment(s)")
        try:
            await conn.execute("DELETE FROM providers WHERE id = $1", row["id"])
            await conn.execute("DELETE FROM ledger_accounts WHERE id = $1", row["clearing_ledger_account_id"])
        except asyncpg.ForeignKeyViolationError as exc:
            raise ProviderInUse(exc.table_name or "other records refer to it") from exc
