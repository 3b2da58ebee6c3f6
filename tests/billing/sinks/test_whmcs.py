"""The WHMCS sink against a stand-in includes/api.php over real HTTP."""

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp.test_utils import TestServer
from structlog.testing import capture_logs

from tests.billing.sinks.conftest import Saved, make_event
from tests.billing.sinks.standins import WHMCS_IDENTIFIER, WHMCS_SECRET, Whmcs
from tolem.billing.sink import Delivered, Manual, Retry
from tolem.billing.sinks.whmcs import WhmcsSink

Serve = Callable[..., Awaitable[TestServer]]


@pytest.fixture
async def whmcs(aiohttp_server: Serve) -> tuple[Whmcs, TestServer]:
    """A WHMCS stand-in listening on a real local socket."""
    stand_in = Whmcs()
    return stand_in, await aiohttp_server(stand_in.app())


def _sink(url: str, secret: str = WHMCS_SECRET, date_format: str = "DD/MM/YYYY") -> WhmcsSink:
    return WhmcsSink(
        url,
        WHMCS_IDENTIFIER,
        secret,
        paymentmethod="elsom",
        date_format=date_format,
        timezone="Asia/Bishkek",
        timeout=2,
    )


@pytest.fixture
async def sink(whmcs: tuple[Whmcs, TestServer]) -> AsyncIterator[WhmcsSink]:
    """The sink with the right API credential."""
    _, server = whmcs
    client = _sink(str(server.make_url("/")))
    yield client
    await client.close()


async def test_a_credit_becomes_one_credit_transaction(
    whmcs: tuple[Whmcs, TestServer], sink: WhmcsSink, saved: Saved
) -> None:
    """AddTransaction to the client's credit, our event id as transid, dated the day paid in our zone."""
    stand_in, _ = whmcs
    event = make_event()
    assert await sink.deliver(event, saved.progress()) == Delivered("WHMCS transaction added")
    (row,) = stand_in.transactions
    assert row["userid"] == "1977"
    assert row["transid"] == str(event.id)
    assert row["amountin"] == "150.50"
    assert row["gateway"] == "elsom"
    assert row["credit"] == "true"
    # 20:30 UTC on 1 December is 02:30 on 2 December in Bishkek.
    assert row["date"] == "02/12/2026"
    assert row["description"] == "Top-up via elsom, txn T-9001"
    assert saved.saves == []


async def test_the_date_follows_the_installations_format(
    whmcs: tuple[Whmcs, TestServer], saved: Saved
) -> None:
    """TOLEM_BILLING_DATE_FORMAT picks WHMCS's localisation format (here month first)."""
    stand_in, server = whmcs
    sink = _sink(str(server.make_url("/")), date_format="MM/DD/YYYY")
    try:
        await sink.deliver(make_event(), saved.progress())
    finally:
        await sink.close()
    assert stand_in.transactions[0]["date"] == "12/02/2026"


async def test_a_lost_answer_then_duplicate_is_confirmed_by_get_transactions(
    whmcs: tuple[Whmcs, TestServer], sink: WhmcsSink, saved: Saved
) -> None:
    """Applied, answer lost; the repeat is refused as a duplicate, GetTransactions confirms it: Delivered."""
    stand_in, _ = whmcs
    stand_in.lose_answer = 1
    event = make_event()
    assert await sink.deliver(event, saved.progress()) == Retry("WHMCS AddTransaction answered HTTP 500")
    outcome = await sink.deliver(event, saved.progress())
    assert outcome == Delivered("WHMCS already holds this transaction")
    assert stand_in.calls == ["AddTransaction", "AddTransaction", "GetTransactions"]
    assert len(stand_in.transactions) == 1


async def test_a_duplicate_with_another_amount_is_not_delivered(
    whmcs: tuple[Whmcs, TestServer], sink: WhmcsSink, saved: Saved
) -> None:
    """Our transid held with a different amount is not proof of delivery: Retry, for a person to look."""
    stand_in, _ = whmcs
    event = make_event()
    stand_in.transactions.append(
        {"id": "1", "userid": "1977", "gateway": "elsom", "amountin": "15.05", "transid": str(event.id)}
    )
    outcome = await sink.deliver(event, saved.progress())
    assert outcome == Retry("WHMCS holds our transaction id with another client or amount: check it by hand")


async def test_large_amounts_are_exact(
    whmcs: tuple[Whmcs, TestServer], sink: WhmcsSink, saved: Saved
) -> None:
    """Sent and compared exactly: a value past float precision survives the duplicate check too."""
    stand_in, _ = whmcs
    stand_in.lose_answer = 1
    event = make_event(amount_minor=900_719_925_474_099_301)
    await sink.deliver(event, saved.progress())
    assert stand_in.transactions[0]["amountin"] == "9007199254740993.01"
    assert isinstance(await sink.deliver(event, saved.progress()), Delivered)
    stand_in.transactions[0]["amountin"] = "9007199254740993.00"
    assert isinstance(await sink.deliver(event, saved.progress()), Retry)


async def test_wrong_credentials_are_retried_without_the_secret(
    whmcs: tuple[Whmcs, TestServer], saved: Saved
) -> None:
    """WHMCS's 403 "Authentication Failed" is Retry naming the setting, never the secret."""
    stand_in, server = whmcs
    sink = _sink(str(server.make_url("/")), secret="not-the-secret-991")
    try:
        outcome = await sink.deliver(make_event(), saved.progress())
    finally:
        await sink.close()
    assert outcome == Retry(
        "WHMCS AddTransaction answered HTTP 403: Authentication Failed: check TOLEM_BILLING_LOGIN"
    )
    assert "not-the-secret-991" not in repr(outcome)
    assert stand_in.transactions == []


async def test_an_unbound_account_is_manual(
    whmcs: tuple[Whmcs, TestServer], sink: WhmcsSink, saved: Saved
) -> None:
    """Without account_ref there is no WHMCS client to credit: Manual, nothing sent."""
    stand_in, _ = whmcs
    outcome = await sink.deliver(make_event(account_ref=None), saved.progress())
    assert outcome == Manual("account not bound to a WHMCS client")
    assert stand_in.calls == []


@pytest.mark.parametrize("kind", ["payment.reversed", "payment.voided"])
async def test_reversals_and_voids_are_manual(
    whmcs: tuple[Whmcs, TestServer], sink: WhmcsSink, saved: Saved, kind: str
) -> None:
    """Removing credit is left to an operator; a void was never credited. Nothing is sent."""
    stand_in, _ = whmcs
    outcome = await sink.deliver(make_event(kind), saved.progress())  # type: ignore[arg-type]
    assert isinstance(outcome, Manual)
    assert stand_in.calls == []


async def test_connection_refused_is_retried_and_nothing_logged(closed_port: int, saved: Saved) -> None:
    """No listener is Retry; the sink writes no log line of its own."""
    sink = _sink(f"http://127.0.0.1:{closed_port}")
    with capture_logs() as logs:
        try:
            outcome = await sink.deliver(make_event(), saved.progress())
        finally:
            await sink.close()
    assert isinstance(outcome, Retry)
    assert outcome.reason.startswith("WHMCS unreachable: ")
    assert logs == []
