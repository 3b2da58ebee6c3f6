"""Where the console grows: sections of the account page and pages of their own.

Another part of tolem shows its data in the console by adding one entry here and one template
under console/templates/panels/; nothing else in the console changes. Every panel and page is
read-only and sees only a database connection, so it cannot skip the login, the CSRF check
or the record of actions, which live in the console's middleware and handlers.
"""

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import asyncpg

from tolem.db import console as console_db
from tolem.db import outbox as outbox_db
from tolem.db import providers as provider_db
from tolem.db import reconcile as reconcile_db
from tolem.db.accounts import AccountView
from tolem.db.operators import Role
from tolem.settings import Settings


@dataclass(frozen=True, slots=True)
class AccountPanel:
    """A section of the account page, below the payments and above the operator actions."""

    name: str
    # Message key of the section's heading (tolem.console.messages).
    title: str
    # Template under console/templates/, rendered with `data` (what `load` returned) and `t`.
    template: str
    load: Callable[[asyncpg.Connection, AccountView, Settings], Awaitable[Mapping[str, Any]]]


@dataclass(frozen=True, slots=True)
class Page:
    """A page of its own at /ops/{name}, listed in the navigation."""

    name: str
    title: str
    template: str
    load: Callable[[asyncpg.Connection, Settings], Awaitable[Mapping[str, Any]]]
    # Who may open it; support sees everything read-only unless a page says otherwise.
    role: Role = Role.SUPPORT


@dataclass(frozen=True, slots=True)
class ProviderRow:
    """A provider as the console lists it: whether secrets are set, never the secrets."""

    name: str
    protocol: str
    enabled: bool
    allow_ips: list[str]
    login: str | None
    has_password: bool
    has_secret: bool
    service_id: str | None
    min_amount_minor: int | None
    max_amount_minor: int | None
    currency: str
    timezone: str | None


async def _providers(conn: asyncpg.Connection, _settings: Settings) -> Mapping[str, Any]:
    found = await provider_db.load_all(conn)
    rows = [
        ProviderRow(
            name=p.name,
            protocol=str(p.protocol),
            enabled=p.enabled,
            allow_ips=[str(n) for n in p.allow_ips],
            login=p.login,
            has_password=p.password_hash is not None,
            has_secret=p.secret is not None,
            service_id=p.service_id,
            min_amount_minor=p.min_amount_minor,
            max_amount_minor=p.max_amount_minor,
            currency=p.currency,
            timezone=p.timezone,
        )
        for p in found.values()
    ]
    return {"providers": rows}


async def _today(conn: asyncpg.Connection, settings: Settings) -> Mapping[str, Any]:
    return {"totals": await console_db.today_totals(conn, settings.timezone)}


# Enough for a morning's work; the rest is in `tolem reconcile list`.
DISCREPANCIES_SHOWN: Final = 200


async def _discrepancies(conn: asyncpg.Connection, _settings: Settings) -> Mapping[str, Any]:
    return {
        "open": await reconcile_db.list_discrepancies(conn, limit=DISCREPANCIES_SHOWN),
        "counts": {name: n for name, n in (await reconcile_db.open_counts(conn)).items() if n},
        "shown": DISCREPANCIES_SHOWN,
    }


# Enough to see the latest payments reach the cabinet; older ones are in `tolem events`.
BILLING_EVENTS_SHOWN: Final = 20


async def _billing(conn: asyncpg.Connection, account: AccountView, settings: Settings) -> Mapping[str, Any]:
    return {
        "events": await outbox_db.account_events(conn, account.id, limit=BILLING_EVENTS_SHOWN),
        # Without a sink nothing is pushed, and events stay pending while the billing reads them
        # from the pull feed; support has to know which of the two it is looking at.
        "pushed": settings.billing_sink != "none",
        "shown": BILLING_EVENTS_SHOWN,
    }


# Another part of tolem adds its section here, its title key to all three tables in
# tolem.console.messages (a test checks that they match) and its template under panels/.
ACCOUNT_PANELS: Final[tuple[AccountPanel, ...]] = (
    AccountPanel("billing", "panel_billing", "panels/billing.html", _billing),
)

PAGES: Final[tuple[Page, ...]] = (
    Page("providers", "nav_providers", "providers.html", _providers),
    Page("today", "nav_today", "today.html", _today),
    Page("discrepancies", "nav_discrepancies", "panels/discrepancies.html", _discrepancies),
)
