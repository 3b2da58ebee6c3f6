"""The console's home and its one search box: email, service, payment code, transaction id."""

from dataclasses import dataclass
from typing import Any, Final

from aiohttp import web

from tolem.console import i18n
from tolem.console.web import CALLS_SHOWN, LANGUAGE, PREFIX, pool, redirect, render
from tolem.core.payment_codes import CodeShape, classify, looks_issued, normalize
from tolem.db import accounts as account_db
from tolem.db import console as console_db
from tolem.db import journal as journal_db
from tolem.db import providers as provider_db

ACCOUNTS_LISTED: Final = 50
_MAX_QUERY: Final = 254
_MAX_TXN: Final = 64


async def home(request: web.Request) -> web.StreamResponse:
    """GET /ops/: the search box."""
    return render(request, "home.html", {})


@dataclass
class AccountHit:
    """An account the search found, with every reason it matched."""

    account: account_db.AccountView
    reasons: list[str]
    payment_id: int | None = None


async def search(request: web.Request) -> web.StreamResponse:
    """GET /ops/search?q=: one box for email, service, payment code and transaction id.

    One account found opens it at once (at the payment, when a transaction id found it): the
    support call "what is my code?" or "did my payment arrive?" is one search away.
    """
    query = request.query.get("q", "").strip()
    if not query:
        return redirect(f"{PREFIX}/")
    t = i18n.translator(request[LANGUAGE])
    if len(query) > _MAX_QUERY:
        context: dict[str, Any] = {
            "query": query[:_MAX_QUERY],
            "hint": "search_too_long",
            "accounts": [],
            "calls": [],
            "currencies": {},
        }
        return render(request, "search.html", context)
    reasons: dict[int, list[str]] = {}
    at_payment: dict[int, int] = {}
    hint = None
    calls: list[journal_db.JournalRow] = []
    async with pool(request).acquire() as conn:
        currencies = {name: p.currency for name, p in (await provider_db.load_all(conn)).items()}
        code = normalize(query)
        if classify(code) is not CodeShape.MALFORMED:
            for found in await account_db.find_account_ids(conn, code=code):
                reasons.setdefault(found, []).append(t("match_code"))
        elif looks_issued(code):
            hint = "hint_check_digit"
        if "@" in query:
            for found in await account_db.find_account_ids(conn, email=query):
                reasons.setdefault(found, []).append(t("match_email"))
        for found in await account_db.find_account_ids(conn, service=query):
            reasons.setdefault(found, []).append(t("match_service"))
        if len(query) <= _MAX_TXN:
            hits = await console_db.payments_by_txn(conn, query)
            for hit in hits:
                reason = t("match_txn", provider=hit.payment.provider, txn=hit.payment.external_id)
                reasons.setdefault(hit.account_id, []).append(reason)
                at_payment.setdefault(hit.account_id, hit.payment.id)
            if not hits:
                # No payment, but the aggregator may have asked and been refused: show that.
                for name in currencies:
                    where = journal_db.JournalFilter(provider=name, txn=query)
                    calls += await journal_db.search(conn, where, limit=CALLS_SHOWN)
        if len(reasons) == 1 and not calls:
            (only,) = reasons
            anchor = f"#payment-{at_payment[only]}" if only in at_payment else ""
            return redirect(f"{PREFIX}/accounts/{only}{anchor}")
        accounts = [
            AccountHit(await account_db.load_account(conn, i, payments=0), why, at_payment.get(i))
            for i, why in list(reasons.items())[:ACCOUNTS_LISTED]
        ]
    calls.sort(key=lambda row: row.id, reverse=True)
    context = {
        "query": query,
        "hint": hint,
        "accounts": accounts,
        "calls": calls,
        "currencies": currencies,
    }
    return render(request, "search.html", context)
