"""The deployment's currency against the database's: one database holds one currency.

tolem never converts. The database refuses any transfer or payment that mixes currencies
(migration 0010); these checks stop an operator earlier, before a provider or an account is
created in a currency the rest of the database does not hold.
"""

from typing import Final

import asyncpg

# Two probes of uq__ledger_accounts__currency__id, one on each side of the expected currency:
# an answer in index time whatever the number of accounts.
_OTHER_CURRENCIES: Final = """
SELECT array_remove(ARRAY[
    (SELECT max(currency) FROM ledger_accounts WHERE currency < $1::char(3)),
    (SELECT min(currency) FROM ledger_accounts WHERE currency > $1::char(3))
], NULL)
"""


class CurrencyMismatch(Exception):
    """The database already holds money in another currency than the one asked for."""

    def __init__(self, wanted: str, held: list[str]) -> None:
        super().__init__(f"the database holds {', '.join(held)}, not {wanted}")
        self.wanted = wanted
        self.held = held


async def other_currencies(conn: asyncpg.Connection, currency: str) -> list[str]:
    """Currencies of ledger accounts other than `currency` (at most two are named)."""
    found = await conn.fetchval(_OTHER_CURRENCIES, currency)
    return [str(c).strip() for c in found]


async def require_currency(conn: asyncpg.Connection, currency: str) -> None:
    """Raises CurrencyMismatch unless every ledger account is held in `currency`."""
    held = await other_currencies(conn, currency)
    if held:
        raise CurrencyMismatch(currency, held)
