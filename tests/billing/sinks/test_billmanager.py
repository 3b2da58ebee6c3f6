"""The BILLmanager sink against a stand-in /billmgr over real HTTP: add, save, setpaid, resume."""

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp.test_utils import TestServer
from structlog.testing import capture_logs

from tests.billing.sinks.conftest import Saved, make_event
from tests.billing.sinks.standins import BILL_LOGIN, BILL_PASSWORD, Billmanager
from tolem.billing.sink import Delivered, Manual, Retry
from tolem.billing.sinks.billmanager import BillmanagerSink

Serve = Callable[..., Awaitable[TestServer]]


@pytest.fixture
async def bill(aiohttp_server: Serve) -> tuple[Billmanager, TestServer]:
    """A BILLmanager stand-in listening on a real local socket."""
    stand_in = Billmanager()
    return stand_in, await aiohttp_server(stand_in.app())


def _sink(server: TestServer, password: str = BILL_PASSWORD, timeout: float = 2) -> BillmanagerSink:
    return BillmanagerSink(
        str(server.make_url("/")), BILL_LOGIN, password, paymethod="7", currency_id="126", timeout=timeout
    )


@pytest.fixture
async def sink(bill: tuple[Billmanager, TestServer], saved: Saved) -> AsyncIterator[BillmanagerSink]:
    """The sink with the right credentials; the progress store sees the receiver's call count."""
    stand_in, server = bill
    saved.calls = lambda: len(stand_in.calls)
    billmanager = _sink(server)
    yield billmanager
    await billmanager.close()


async def test_a_credit_becomes_one_credited_payment(
    bill: tuple[Billmanager, TestServer], sink: BillmanagerSink, saved: Saved
) -> None:
    """payment.add for the bound client and payer, its id saved, then setpaid with our event id."""
    stand_in, _ = bill
    event = make_event()
    outcome = await sink.deliver(event, saved.progress())
    assert outcome == Delivered("BILLmanager payment 101 credited")
    assert stand_in.calls == ["payment.add", "payment.setpaid"]
    assert saved.saves == ["101"]
    assert saved.seen_at_save == [1]  # saved after payment.add answered, before setpaid was asked
    payment = stand_in.payments["101"]
    assert (payment.client, payment.profile, payment.amount) == ("1977", "310", "150.50")
    assert (payment.currency, payment.paymethod, payment.status) == ("126", "7", "4")
    assert payment.externalid == str(event.id)


async def test_a_crash_after_the_save_resumes_without_a_second_add(
    bill: tuple[Billmanager, TestServer], sink: BillmanagerSink, saved: Saved
) -> None:
    """Progress saved, setpaid fails; the next attempt resumes from the saved id: one payment, one credit."""
    stand_in, server = bill
    stand_in.fail["payment.setpaid"] = 1
    event = make_event()
    first = await sink.deliver(event, saved.progress())
    assert first == Retry("BILLmanager payment.setpaid answered HTTP 500")
    assert saved.remote_ref == "101"
    await sink.close()  # the process died; a new one builds its own sink
    restarted = _sink(server)
    try:
        second = await restarted.deliver(event, saved.progress())
    finally:
        await restarted.close()
    assert second == Delivered("BILLmanager payment 101 credited")
    assert stand_in.calls.count("payment.add") == 1
    assert len(stand_in.payments) == 1
    assert len(stand_in.credited()) == 1


async def test_setpaid_applied_but_answer_lost_counts_as_delivered_on_resume(
    bill: tuple[Billmanager, TestServer], sink: BillmanagerSink, saved: Saved
) -> None:
    """setpaid credited but its answer was lost: the refusal to credit twice plus status 4 is Delivered."""
    stand_in, _ = bill
    stand_in.lose_answer["payment.setpaid"] = 1
    event = make_event()
    assert isinstance(await sink.deliver(event, saved.progress()), Retry)
    assert len(stand_in.credited()) == 1
    outcome = await sink.deliver(event, saved.progress())
    assert outcome == Delivered("BILLmanager payment 101 was already credited")
    assert stand_in.calls == ["payment.add", "payment.setpaid", "payment.setpaid", "payment"]
    assert len(stand_in.credited()) == 1


async def test_a_refused_setpaid_on_an_uncredited_payment_is_retried(
    bill: tuple[Billmanager, TestServer], sink: BillmanagerSink, saved: Saved
) -> None:
    """A setpaid error for a payment that is not credited stays Retry, with BILLmanager's reason."""
    stand_in, _ = bill
    saved.remote_ref = "999"  # a saved id BILLmanager does not know (deleted by hand, say)
    outcome = await sink.deliver(make_event(), saved.progress())
    assert outcome == Retry("payment.setpaid 999 refused: missed: Payment not found")
    assert "payment.add" not in stand_in.calls


async def test_an_add_whose_answer_was_lost_is_added_again_but_credited_once(
    bill: tuple[Billmanager, TestServer], sink: BillmanagerSink, saved: Saved
) -> None:
    """Without a saved id nothing can be resumed: a new payment is added, and only it is credited."""
    stand_in, _ = bill
    stand_in.lose_answer["payment.add"] = 1
    event = make_event()
    assert await sink.deliver(event, saved.progress()) == Retry("BILLmanager payment.add answered HTTP 500")
    assert saved.saves == []
    assert isinstance(await sink.deliver(event, saved.progress()), Delivered)
    assert [p.status for p in stand_in.payments.values()] == ["1", "4"]


async def test_large_amounts_are_exact(
    bill: tuple[Billmanager, TestServer], sink: BillmanagerSink, saved: Saved
) -> None:
    """Minor units become major-unit decimal text digit for digit, without a float."""
    stand_in, _ = bill
    await sink.deliver(make_event(amount_minor=900_719_925_474_099_301), saved.progress())
    assert stand_in.payments["101"].amount == "9007199254740993.01"


async def test_an_unbound_account_is_manual(
    bill: tuple[Billmanager, TestServer], sink: BillmanagerSink, saved: Saved
) -> None:
    """An event without account_ref is kept for an operator; nothing is sent."""
    stand_in, _ = bill
    outcome = await sink.deliver(make_event(account_ref=None), saved.progress())
    assert outcome == Manual("account not bound to a BILLmanager client")
    assert stand_in.calls == []


@pytest.mark.parametrize("kind", ["payment.reversed", "payment.voided"])
async def test_reversals_and_voids_are_manual(
    bill: tuple[Billmanager, TestServer], sink: BillmanagerSink, saved: Saved, kind: str
) -> None:
    """BILLmanager is only ever credited; taking money back is an operator's act, with the reason."""
    stand_in, _ = bill
    outcome = await sink.deliver(make_event(kind), saved.progress())  # type: ignore[arg-type]
    assert isinstance(outcome, Manual)
    assert ("reversal" if kind == "payment.reversed" else "never credited") in outcome.reason
    assert stand_in.calls == []


async def test_a_payer_less_account_sends_no_profile(
    bill: tuple[Billmanager, TestServer], sink: BillmanagerSink, saved: Saved
) -> None:
    """Without payer_ref the profile is left for BILLmanager to choose."""
    stand_in, _ = bill
    await sink.deliver(make_event(payer_ref=None), saved.progress())
    assert stand_in.payments["101"].profile is None


async def test_wrong_credentials_are_retried_without_the_password(
    bill: tuple[Billmanager, TestServer],
) -> None:
    """An auth error doc is Retry naming the setting to fix, never showing the password."""
    stand_in, server = bill
    sink = _sink(server, password="wrong-pass-123")
    saved = Saved()
    try:
        outcome = await sink.deliver(make_event(), saved.progress())
    finally:
        await sink.close()
    assert outcome == Retry("BILLmanager refused our credentials (auth): check TOLEM_BILLING_LOGIN")
    assert saved.saves == []
    assert stand_in.payments == {}


async def test_an_error_doc_from_payment_add_is_retried(
    bill: tuple[Billmanager, TestServer], saved: Saved
) -> None:
    """A payment method BILLmanager refuses is Retry with its type and message; nothing saved."""
    _, server = bill
    sink = BillmanagerSink(
        str(server.make_url("/")), BILL_LOGIN, BILL_PASSWORD, paymethod="8", currency_id="126", timeout=2
    )
    try:
        outcome = await sink.deliver(make_event(), saved.progress())
    finally:
        await sink.close()
    assert outcome == Retry("payment.add refused: value: Payment method is not available")
    assert saved.saves == []


async def test_an_answer_that_is_not_json_is_retried(
    bill: tuple[Billmanager, TestServer], sink: BillmanagerSink, saved: Saved
) -> None:
    """An HTML page (a login form, a proxy's error) is an unknown shape: Retry."""
    stand_in, _ = bill
    stand_in.html = True
    outcome = await sink.deliver(make_event(), saved.progress())
    assert isinstance(outcome, Retry)
    assert "other than JSON" in outcome.reason


async def test_connection_refused_and_logs(closed_port: int, saved: Saved) -> None:
    """No listener is Retry; the sink writes no log line and no reason holds the password or code."""
    sink = BillmanagerSink(
        f"http://127.0.0.1:{closed_port}",
        BILL_LOGIN,
        BILL_PASSWORD,
        paymethod="7",
        currency_id="126",
        timeout=1,
    )
    with capture_logs() as logs:
        try:
            outcome = await sink.deliver(make_event(), saved.progress())
        finally:
            await sink.close()
    assert isinstance(outcome, Retry)
    assert outcome.reason.startswith("BILLmanager unreachable: ")
    assert logs == []
    assert BILL_PASSWORD not in repr(outcome)
