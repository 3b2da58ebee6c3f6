"""Click callers that fail the signature or the allow-list never reach the ledger, though the
refusal echoes their ids; no log line holds the secret, a signature or a whole payment code."""

from typing import Any

import pytest

from tests.conftest import Factory
from tests.http.click.conftest import SECRET, SERVICE_ID, ClickSide, ClickWorld, echoing, sign, sign_failed
from tests.security import assert_no_secrets, captured_logs, spy_on_store
from tolem.app import create_app
from tolem.settings import Settings


@pytest.mark.parametrize(
    ("override", "error", "note"),
    [
        ({"sign_string": "0" * 32}, -1, "SIGN CHECK FAILED!"),
        ({"sign_string": ""}, -1, "SIGN CHECK FAILED!"),
        ({"service_id": "1"}, -8, "Incorrect parameter service_id"),
        ({"amount": "999"}, -1, "SIGN CHECK FAILED!"),
    ],
)
async def test_bad_signature_never_reaches_the_store(
    world: ClickWorld, monkeypatch: pytest.MonkeyPatch, override: dict[str, str], error: int, note: str
) -> None:
    """A forged or altered Prepare and Complete (-1, or -8 for another service id) echoing
    click_trans_id, merchant_trans_id (and merchant_prepare_id on Complete): not one store call."""
    calls = spy_on_store(monkeypatch)
    prepare = world.click.prepare_fields() | override
    complete = world.click.complete_fields(77, "2001") | override
    for fields in (prepare, complete):
        reply = await world.click.post(fields)
        assert (reply.status, reply.body) == (200, echoing(fields, error, note))
    assert reply.body["merchant_prepare_id"] == 77
    assert (reply.body["click_trans_id"], reply.body["merchant_trans_id"]) == (2001, world.code)
    assert calls == []
    assert await world.money() == (0, 0, 0)


async def test_a_foreign_secret_never_reaches_the_store(
    world: ClickWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A form signed with another merchant's secret: -1 with its ids, and not one store call."""
    calls = spy_on_store(monkeypatch)
    fields = world.click.prepare_fields()
    fields["sign_string"] = sign(fields, secret="another-merchant-secret")
    reply = await world.click.post(fields)
    assert reply.body == sign_failed(fields)
    assert calls == []


async def test_caller_outside_the_allow_list_never_reaches_the_store(
    aiohttp_client: Any, settings: Settings, factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A correctly signed Prepare and Complete from outside the allow-list: -1 echoing their
    ids, and not one store call."""
    await factory.provider(
        "click", protocol="click", allow_ips=["10.20.0.0/16"], secret=SECRET, service_id=SERVICE_ID
    )
    _, code = await factory.account()
    click = ClickSide(await aiohttp_client(create_app(settings)), code)
    calls = spy_on_store(monkeypatch)
    for fields in (click.prepare_fields("1001"), click.complete_fields(5, "1002")):
        reply = await click.post(fields)
        assert reply.body == sign_failed(fields)
    assert reply.body == {
        "click_trans_id": 1002,
        "merchant_trans_id": code,
        "merchant_prepare_id": 5,
        "error": -1,
        "error_note": "SIGN CHECK FAILED!",
    }
    assert calls == []


@pytest.mark.parametrize(
    ("override", "echoed"),
    [
        ({"click_trans_id": "0123"}, {"merchant_trans_id", "merchant_prepare_id"}),
        ({"click_trans_id": "9" * 25}, {"merchant_trans_id", "merchant_prepare_id"}),
        ({"merchant_trans_id": "7" * 65}, {"click_trans_id", "merchant_prepare_id"}),
        ({"merchant_prepare_id": "-4"}, {"click_trans_id", "merchant_trans_id"}),
    ],
)
async def test_refusal_echoes_only_ids_it_can_vouch_for(
    world: ClickWorld, monkeypatch: pytest.MonkeyPatch, override: dict[str, str], echoed: set[str]
) -> None:
    """A forged Complete's ids are echoed only when they are ids Click could have issued (and a
    merchant_trans_id only up to 64 characters); not one store call."""
    calls = spy_on_store(monkeypatch)
    fields = world.click.complete_fields(5, "1002", sign_string="0" * 32) | override
    reply = await world.click.post(fields)
    assert set(reply.body) == echoed | {"error", "error_note"}
    assert reply.body == sign_failed(fields)
    assert calls == []


async def test_the_spy_sees_a_signed_caller(world: ClickWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    """A correctly signed Prepare does reach the store, so the refusals above are real."""
    calls = spy_on_store(monkeypatch)
    reply = await world.click.prepare()
    assert reply.body["error"] == 0
    assert calls


async def test_no_log_line_holds_the_secret_a_signature_or_a_code(
    world: ClickWorld, caplog: pytest.LogCaptureFixture
) -> None:
    """Prepare, Complete, replays and forgeries: logs never show secret, sign_string or code."""
    prepare = world.click.prepare_fields()
    with captured_logs(caplog) as lines:
        first = await world.click.post(prepare)
        complete = world.click.complete_fields(first.body["merchant_prepare_id"])
        await world.click.post(complete)
        await world.click.post(complete)
        await world.click.post(prepare | {"sign_string": "f" * 32})
        await world.click.post(prepare | {"amount": "1000000000"})
    assert await world.money() == (1000_00, 1, 1)
    assert any("Complete" in line or "complete" in line for line in lines)
    assert_no_secrets(lines, SECRET, prepare["sign_string"], complete["sign_string"], world.code)
