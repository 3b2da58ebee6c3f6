"""pay: credits exactly once per txn_id; repeats answer the first answer; refusals move nothing."""

from datetime import UTC, datetime

from pydantic import SecretStr

from tests.conftest import Factory
from tests.http.osmp.conftest import XML_TYPE, ClientMaker, Kiosk, OsmpWorld, paid, refused
from tolem.app import create_app
from tolem.ops import metrics
from tolem.settings import Settings


async def test_pay_credits_and_answers_prv_txn(world: OsmpWorld) -> None:
    """A first pay credits the sum once and answers result 0 with our payment id and the sum."""
    reply = await world.kiosk.pay("1001", "150.00")
    prv_txn = await world.payment_id("1001")
    assert (reply.status, reply.content_type) == (200, XML_TYPE)
    assert reply.text == paid("1001", prv_txn, "150.00")
    assert await world.money() == (150_00, 1, 1)


async def test_pay_by_form_post(world: OsmpWorld) -> None:
    """The same pay as a url-encoded POST body is read and credited just like GET."""
    reply = await world.kiosk.post(world.kiosk.pay_params("1002", "20.5"))
    assert reply.text == paid("1002", await world.payment_id("1002"), "20.50")
    assert await world.money() == (20_50, 1, 1)


async def test_repeat_pay_answers_the_same_and_credits_once(world: OsmpWorld) -> None:
    """A repeated pay (GET, then POST) gets a byte-identical answer; the balance moves once."""
    first = await world.kiosk.pay("1003", "99.99")
    again = await world.kiosk.pay("1003", "99.99")
    posted = await world.kiosk.post(world.kiosk.pay_params("1003", "99.99"))
    assert first.text == again.text == posted.text
    assert await world.money() == (99_99, 1, 1)


async def test_repeat_with_other_sum_or_account_is_refused(world: OsmpWorld) -> None:
    """The same txn_id with another sum or another account is 300 and credits nothing more."""
    await world.kiosk.pay("1004", "100.00")
    _, other_code = await world.factory.account("Bekov Bek")
    conflict = refused("1004", 300, "txn_id already used with another account or sum")
    assert (await world.kiosk.pay("1004", "100.01")).text == conflict
    assert (await world.kiosk.pay("1004", "100.00", account=other_code)).text == conflict
    assert await world.money() == (100_00, 1, 1)


async def test_txn_id_with_leading_zeros_is_the_same_payment(world: OsmpWorld) -> None:
    """`0001005` and `1005` are one aggregator number: the second replays, echoing its own text."""
    first = await world.kiosk.pay("1005", "30.00")
    again = await world.kiosk.pay("0001005", "30.00")
    prv_txn = await world.payment_id("1005")
    assert first.text == paid("1005", prv_txn, "30.00")
    assert again.text == paid("0001005", prv_txn, "30.00")
    assert await world.money() == (30_00, 1, 1)


async def test_longest_txn_id_is_accepted(world: OsmpWorld) -> None:
    """A 28-digit txn_id (Pay24) is a valid key beyond bigint, echoed whole."""
    txn_id = "9" * 28
    reply = await world.kiosk.pay(txn_id, "10.00")
    assert reply.text == paid(txn_id, await world.payment_id(txn_id), "10.00")


async def test_pay_without_prior_check_works(world: OsmpWorld) -> None:
    """No check is needed before pay (retries of pay arrive alone)."""
    reply = await world.kiosk.pay("1006", "10.00")
    assert "<result>0</result>" in reply.text
    assert await world.money() == (10_00, 1, 1)


async def test_code_typed_with_spaces_is_the_code(world: OsmpWorld) -> None:
    """Spaces inside the account are ignored: `0012 3456 7890` is the code without them."""
    spaced = " ".join(world.code[i : i + 4] for i in range(0, len(world.code), 4))
    reply = await world.kiosk.pay("1007", "10.00", account=spaced)
    assert reply.text == paid("1007", await world.payment_id("1007"), "10.00")


async def test_limits_answer_241_and_242(world: OsmpWorld) -> None:
    """Below the minimum is 241, above the maximum 242, zero is 241; nothing is stored."""
    assert (await world.kiosk.pay("1010", "9.99")).text == refused("1010", 241, "sum too small")
    assert (await world.kiosk.pay("1011", "50000.01")).text == refused("1011", 242, "sum too large")
    assert (await world.kiosk.pay("1012", "0.00")).text == refused("1012", 241, "sum too small")
    assert (await world.kiosk.pay("1013", "50000.00")).text.count("<result>0</result>") == 1
    assert await world.money() == (50_000_00, 1, 1)


async def test_unknown_malformed_and_blocked_accounts(world: OsmpWorld) -> None:
    """Unknown code 5, bad check digit 4, letters-and-symbols 4, blocked account 79; no credit."""
    wrong_digit = world.code[:-1] + str((int(world.code[-1]) + 1) % 10)
    unknown = "ABC-123"
    kiosk = world.kiosk
    assert (await kiosk.pay("1020", account=wrong_digit)).text == refused("1020", 4, "malformed account")
    assert (await kiosk.pay("1021", account="00$%")).text == refused("1021", 4, "malformed account")
    assert (await kiosk.pay("1022", account=unknown)).text == refused("1022", 5, "account not found")
    await world.factory.block(world.account_id)
    assert (await kiosk.pay("1023")).text == refused("1023", 79, "account blocked")
    assert await world.money() == (0, 0, 0)


async def test_account_blocked_between_check_and_pay(world: OsmpWorld) -> None:
    """A check passes, the account is blocked, the pay is refused with 79 (final)."""
    assert "<result>0</result>" in (await world.kiosk.check("1030")).text
    await world.factory.block(world.account_id)
    assert (await world.kiosk.pay("1030")).text == refused("1030", 79, "account blocked")
    assert await world.money() == (0, 0, 0)


async def test_replay_survives_a_later_block_and_limit_change(world: OsmpWorld) -> None:
    """A repeat of an accepted pay replays even after the account was blocked and the limits
    lowered below its sum."""
    first = await world.kiosk.pay("1031", "40.00")
    await world.factory.block(world.account_id)
    async with world.factory.pool.acquire() as conn:
        await conn.execute("UPDATE providers SET min_amount_minor = 1, max_amount_minor = 100")
    assert (await world.kiosk.pay("1031", "40.00")).text == first.text
    assert await world.money() == (40_00, 1, 1)


async def test_repeat_after_a_fatal_refusal_gets_the_same_refusal(world: OsmpWorld) -> None:
    """A refused pay stores nothing, so its repeat is judged again and refused alike."""
    first = await world.kiosk.pay("1032", "5.00")
    assert first.text == (await world.kiosk.pay("1032", "5.00")).text == refused("1032", 241, "sum too small")
    assert await world.money() == (0, 0, 0)


async def test_txn_date_is_stored_in_the_deployment_zone(world: OsmpWorld) -> None:
    """txn_date without offset is Asia/Bishkek (UTC+6) by default; stored in UTC, raw kept."""
    await world.kiosk.pay("1040", txn_date="20261125143000")
    async with world.factory.pool.acquire() as conn:
        row = await conn.fetchrow("SELECT provider_time, provider_time_raw FROM payments")
    assert row["provider_time"] == datetime(2026, 11, 25, 8, 30, tzinfo=UTC)
    assert row["provider_time_raw"] == "20261125143000"


async def test_txn_date_in_the_providers_own_zone(world: OsmpWorld) -> None:
    """A provider configured with Europe/Moscow (QIWI's registry time) has its txn_date read so."""
    async with world.factory.pool.acquire() as conn:
        await conn.execute("UPDATE providers SET timezone = 'Europe/Moscow'")
    await world.kiosk.pay("1041", txn_date="20261125143000")
    async with world.factory.pool.acquire() as conn:
        stored = await conn.fetchval("SELECT provider_time FROM payments")
    assert stored == datetime(2026, 11, 25, 11, 30, tzinfo=UTC)


async def test_matching_currency_is_accepted_and_other_refused(world: OsmpWorld) -> None:
    """ccy=KGS (or 417) is accepted; another currency is 7 and nothing moves."""
    assert "<result>0</result>" in (await world.kiosk.pay("1050", "10.00", ccy="KGS")).text
    assert "<result>0</result>" in (await world.kiosk.pay("1051", "10.00", ccy="417")).text
    assert (await world.kiosk.pay("1052", "10.00", ccy="USD")).text == refused("1052", 7, "currency refused")
    assert await world.money() == (20_00, 2, 2)


async def test_provider_disabled_while_cached_answers_7(
    aiohttp_client: ClientMaker, database_url: str, factory: Factory
) -> None:
    """A worker still holding the provider as enabled is stopped by the database: 7, no credit."""
    await factory.provider("kiosk", protocol="osmp")
    account_id, code = await factory.account()
    settings = Settings(database_url=SecretStr(database_url), provider_cache_seconds=3600)
    kiosk = Kiosk(await aiohttp_client(create_app(settings)), code)
    assert "<result>0</result>" in (await kiosk.check("1060")).text
    async with factory.pool.acquire() as conn:
        await conn.execute("UPDATE providers SET enabled = false")
    assert (await kiosk.pay("1060")).text == refused("1060", 7, "provider disabled")
    assert await factory.balance(account_id) == 0


async def test_metrics_count_by_command_and_result(world: OsmpWorld) -> None:
    """Gateway calls are counted under the OSMP command and result code; replays apart."""

    def sample(name: str, **labels: str) -> float:
        return metrics.REGISTRY.get_sample_value(name, {"provider": "kiosk", **labels}) or 0.0

    paid_ok = {"command": "pay", "result": "0"}
    too_small = {"command": "pay", "result": "241"}
    before = (
        sample("tolem_gateway_requests_total", **paid_ok),
        sample("tolem_gateway_requests_total", **too_small),
        sample("tolem_replays_total"),
        sample("tolem_credited_minor_total"),
    )
    await world.kiosk.pay("1070", "11.00")
    await world.kiosk.pay("1070", "11.00")
    await world.kiosk.pay("1071", "1.00")
    after = (
        sample("tolem_gateway_requests_total", **paid_ok),
        sample("tolem_gateway_requests_total", **too_small),
        sample("tolem_replays_total"),
        sample("tolem_credited_minor_total"),
    )
    assert [a - b for a, b in zip(after, before, strict=True)] == [2, 1, 1, 11_00]
