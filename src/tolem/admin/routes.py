"""The admin API's one route table: every endpoint is one row of ROUTES.

The aiohttp router (tolem.admin.api) and the OpenAPI document (tolem.admin.openapi) are both
built from this table, so the document cannot drift from what is served.
"""

import re
from dataclasses import dataclass
from typing import Final

from pydantic import BaseModel

from tolem.admin import models as m
from tolem.admin.billing import bind_account, bind_payer, events
from tolem.admin.call import Call, Handler
from tolem.admin.handlers import (
    account_payments,
    add_payer,
    block,
    create_account,
    journal,
    lookup,
    providers,
    show_account,
    unblock,
)
from tolem.admin.reports import (
    DailyQuery,
    DailyReport,
    DiscrepancyPage,
    DiscrepancyQuery,
    ListedPaymentPage,
    PaymentListQuery,
    daily,
    discrepancies,
    payments,
)

PREFIX: Final = "/admin"
_PATH_REGEX_RE: Final = re.compile(r"\{(\w+):[^}]*\}")


@dataclass(frozen=True, slots=True)
class Route:
    """One admin endpoint: everything the router and the OpenAPI document need."""

    method: str
    path: str
    name: str
    summary: str
    handler: Handler
    response: type[BaseModel]
    status: int = 200
    query: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    errors: tuple[int, ...] = ()
    also: tuple[int, ...] = ()  # other success statuses the handler answers with (Answer)

    @property
    def openapi_path(self) -> str:
        """The path as OpenAPI writes it: `{account_id}` without the router's pattern."""
        return PREFIX + _PATH_REGEX_RE.sub(r"{\1}", self.path)


async def _openapi_placeholder(call: Call) -> BaseModel:
    raise AssertionError("served by openapi_view")


class OpenApiDocument(BaseModel):
    """The OpenAPI 3.1 document of this API (free-form JSON)."""


_ID: Final = r"{account_id:\d+}"
_REF: Final = r"{ref:[^/]+}"
_PAYER_REF: Final = r"{payer_ref:[^/]+}"

ROUTES: Final = (
    Route("GET", "/lookup", "lookup", "Accounts by payment code, email, service name or billing id", lookup,
          m.AccountList, query=m.LookupQuery, errors=(400, 401, 404)),
    Route("POST", "/accounts", "create_account", "Create an account with its first payer", create_account,
          m.Account, status=201, body=m.AccountCreate, errors=(400, 401, 409)),
    Route("GET", f"/accounts/{_ID}", "show_account", "An account, its payers, codes and latest payments",
          show_account, m.Account, errors=(401, 404)),
    Route("POST", f"/accounts/{_ID}/payers", "add_payer", "Add a payer (a new payment code)", add_payer,
          m.PayerCreated, status=201, body=m.PayerCreate, errors=(400, 401, 404)),
    Route("POST", f"/accounts/{_ID}/block", "block", "Block an account", block, m.AccountStatus,
          errors=(401, 404)),
    Route("POST", f"/accounts/{_ID}/unblock", "unblock", "Unblock an account", unblock, m.AccountStatus,
          errors=(401, 404)),
    Route("GET", f"/accounts/{_ID}/payments", "account_payments", "An account's payments, newest first",
          account_payments, m.PaymentPage, query=m.PageQuery, errors=(400, 401, 404)),
    Route("GET", "/providers", "providers", "Providers, secrets only as present or absent", providers,
          m.ProviderList, errors=(401,)),
    Route("GET", "/journal", "journal", "What aggregators asked and what we answered", journal,
          m.JournalPage, query=m.JournalQuery, errors=(400, 401)),
    Route("GET", "/openapi.json", "openapi", "This document", _openapi_placeholder, OpenApiDocument,
          errors=(401,)),
    # The accountant's (tolem.admin.reports)
    Route("GET", "/payments", "payments", "Payments by provider, txn, code, state and time; newest first",
          payments, ListedPaymentPage, query=PaymentListQuery, errors=(400, 401, 404)),
    Route("GET", "/reports/daily", "daily_report",
          "Credited, reversed and voided per provider and day, from the ledger", daily, DailyReport,
          query=DailyQuery, errors=(400, 401, 404)),
    Route("GET", "/discrepancies", "discrepancies", "Registry discrepancies to work off", discrepancies,
          DiscrepancyPage, query=DiscrepancyQuery, errors=(400, 401, 404)),
    # The billing's (tolem.admin.billing)
    Route("PUT", f"/accounts/by-ref/{_REF}", "bind_account",
          "Create or update the account of a billing client id", bind_account, m.AccountBound,
          body=m.AccountBind, errors=(400, 401, 409), also=(201,)),
    Route("PUT", f"/accounts/by-ref/{_REF}/payers/{_PAYER_REF}", "bind_payer",
          "Create a billing payer's payment code once; the same code on every repeat", bind_payer,
          m.PayerBound, body=m.PayerBind, errors=(400, 401, 404, 409), also=(201,)),
    Route("GET", "/events", "events", "Credits, reversals and voids in feed order, paged by cursor",
          events, m.EventPage, query=m.EventsQuery, errors=(400, 401)),
)  # fmt: skip
