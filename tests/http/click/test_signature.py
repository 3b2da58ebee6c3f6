"""Who may call: the signature over the exact received text, the service id, the IP list."""

import pytest
from structlog.testing import capture_logs

from tests.conftest import Factory, provider_value
from tests.http.click.conftest import (
    SECRET,
    SERVICE_ID,
    ClickSide,
    ClickWorld,
    ClientMaker,
    echoing,
    md5_of,
    ok_complete,
    ok_prepare,
    sign,
    sign_failed,
)
from tolem.app import create_app
from tolem.core.model import Provider, WireProtocol
from tolem.protocols.click import auth
from tolem.settings import Settings


def provider(secret: str | None = SECRET, service_id: str | None = SERVICE_ID) -> Provider:
    """A Click provider value for the pure signature checks."""
    return provider_value(WireProtocol.CLICK, "click", currency="UZS", secret=secret, service_id=service_id)


PREPARE = {
    "click_trans_id": "2349871",
    "service_id": "31337",
    "merchant_trans_id": "0012345",
    "amount": "1000.00",
    "action": "0",
    "sign_time": "2024-05-01 12:00:00",
}


class TestFormula:
    def test_prepare_formula_pinned(self) -> None:
        """The Prepare signature is md5 of the documented concatenation, pinned to one vector."""
        # md5("2349871" "31337" "Zx9-secret-key" "0012345" "1000.00" "0" "2024-05-01 12:00:00")
        assert auth.signature(PREPARE, SECRET, with_prepare_id=False) == "821c755b8daae33a3b194bdc8fc4c6cc"

    def test_complete_formula_includes_prepare_id(self) -> None:
        """Complete's signature inserts merchant_prepare_id after merchant_trans_id."""
        fields = PREPARE | {"action": "1", "merchant_prepare_id": "81234"}
        assert auth.signature(fields, SECRET, with_prepare_id=True) == sign(fields)
        assert auth.signature(fields, SECRET, with_prepare_id=False) != sign(fields)

    def test_amount_text_is_signed_as_sent(self) -> None:
        """`1000` and `1000.00` are the same money but different signatures."""
        whole = PREPARE | {"amount": "1000"}
        assert auth.signature(whole, SECRET, with_prepare_id=False) == sign(whole)
        assert sign(whole) != sign(PREPARE)

    def test_uppercase_hex_is_accepted(self) -> None:
        """Hex case carries no meaning: an uppercase sign_string matches."""
        fields = PREPARE | {"sign_string": sign(PREPARE).upper()}
        assert auth.signature_matches(provider(), fields)

    def test_non_ascii_signature_is_a_mismatch_not_a_crash(self) -> None:
        """A sign_string with non-ASCII characters is simply wrong."""
        assert not auth.signature_matches(provider(), PREPARE | {"sign_string": "ÿ" * 32})

    def test_no_secret_matches_nothing(self) -> None:
        """A provider without a secret accepts no signature, not even one over an empty key."""
        fields = PREPARE | {"sign_string": sign(PREPARE, secret="")}
        assert not auth.signature_matches(provider(secret=None), fields)

    def test_service_id_compared_exactly(self) -> None:
        """The service id must equal the configured one, text for text."""
        assert auth.service_matches(provider(), "31337")
        assert not auth.service_matches(provider(), "31337 ")
        assert not auth.service_matches(provider(), "031337")
        assert not auth.service_matches(provider(service_id=None), "31337")


class TestOverHttp:
    @pytest.mark.parametrize("amount", ["1000", "1000.00", "1000.0"])
    async def test_amount_as_sent_is_verified_and_parsed(self, world: ClickWorld, amount: str) -> None:
        """However Click writes 1000 soums, the signature over that text passes and 1000 is reserved."""
        reply = await world.click.prepare(amount=amount)
        assert reply.body == ok_prepare(world.code, reply.body["merchant_prepare_id"])
        async with world.factory.pool.acquire() as conn:
            assert await conn.fetchval("SELECT amount_minor FROM payments") == 1000_00

    async def test_signature_over_reformatted_amount_is_refused(self, world: ClickWorld) -> None:
        """Signed over `1000` but sent as `1000.00`: -1, because the text differs from what was signed."""
        fields = world.click.prepare_fields()  # signed with amount "1000"
        fields["amount"] = "1000.00"
        reply = await world.click.post(fields)
        assert reply.body == sign_failed(fields)
        assert await world.money() == (0, 0, 0)

    async def test_complete_signed_with_prepare_formula_is_refused(self, world: ClickWorld) -> None:
        """A Complete signed without merchant_prepare_id (the Prepare formula) is refused -1."""
        prepare_id = (await world.click.prepare()).body["merchant_prepare_id"]
        fields = world.click.complete_fields(prepare_id)
        fields["sign_string"] = md5_of(
            fields["click_trans_id"], SERVICE_ID, SECRET, world.code, "1000", "1", fields["sign_time"]
        )
        reply = await world.click.post(fields)
        assert reply.body == sign_failed(fields)
        assert await world.money() == (0, 1, 0)

    async def test_prepare_id_is_covered_by_signature(self, world: ClickWorld) -> None:
        """Changing merchant_prepare_id after signing breaks the signature (-1), nothing is credited."""
        prepare_id = (await world.click.prepare()).body["merchant_prepare_id"]
        fields = world.click.complete_fields(prepare_id)
        fields["merchant_prepare_id"] = str(prepare_id + 1)
        reply = await world.click.post(fields)
        assert reply.body == sign_failed(fields)
        assert await world.money() == (0, 1, 0)

    async def test_wrong_service_id_is_refused_even_when_signed(self, world: ClickWorld) -> None:
        """A correctly signed request for another service id is refused -8 with a note naming
        service_id, never as a failed signature."""
        fields = world.click.prepare_fields(service_id="99999")
        reply = await world.click.post(fields)
        assert reply.body == echoing(fields, -8, "Incorrect parameter service_id")
        assert await world.money() == (0, 0, 0)

    async def test_wrong_secret_is_refused(self, world: ClickWorld) -> None:
        """A signature made with another key is refused -1."""
        fields = world.click.prepare_fields()
        fields["sign_string"] = sign(fields, secret="guess")
        reply = await world.click.post(fields)
        assert reply.body == sign_failed(fields)
        assert await world.money() == (0, 0, 0)

    @pytest.mark.parametrize("bad", ["", "xyz", "0" * 31, "0" * 33])
    async def test_malformed_sign_string_is_a_mismatch(self, world: ClickWorld, bad: str) -> None:
        """A sign_string that is not even 32 hex digits is a failed signature (-1)."""
        fields = world.click.prepare_fields(sign_string=bad)
        reply = await world.click.post(fields)
        assert reply.body == sign_failed(fields)
        assert await world.money() == (0, 0, 0)

    async def test_unsigned_garbage_is_refused_before_parsing(self, world: ClickWorld) -> None:
        """Malformed fields under a bad signature answer -1, not -8: nothing is interpreted first
        (the malformed click_trans_id is not echoed)."""
        fields = world.click.prepare_fields(click_trans_id="abc", amount="-5", sign_string="0" * 32)
        reply = await world.click.post(fields)
        assert reply.body == {
            "merchant_trans_id": world.code,
            "error": -1,
            "error_note": "SIGN CHECK FAILED!",
        }

    @pytest.mark.parametrize("with_prepare_id", [False, True])
    async def test_unknown_action_signed_either_way_is_minus_3(
        self, world: ClickWorld, *, with_prepare_id: bool
    ) -> None:
        """action=5 has no published formula: signed like Prepare or like Complete, it gets -3."""
        fields = world.click.complete_fields(77, action="5", sign_string="")
        extra = ["77"] if with_prepare_id else []
        fields["sign_string"] = md5_of(
            fields["click_trans_id"], SERVICE_ID, SECRET, world.code, *extra, "1000", "5", fields["sign_time"]
        )
        reply = await world.click.post(fields)
        assert reply.body == {
            "click_trans_id": 1001,
            "merchant_trans_id": world.code,
            "error": -3,
            "error_note": "Action not found",
        }
        assert await world.money() == (0, 0, 0)


class TestCallers:
    async def test_ip_outside_allow_list_is_refused_first(
        self, aiohttp_client: ClientMaker, settings: Settings, factory: Factory
    ) -> None:
        """With an allow-list that excludes the caller, even a perfectly signed Prepare gets -1."""
        await factory.provider(
            "click", protocol="click", allow_ips=["192.0.2.0/24"], secret=SECRET, service_id=SERVICE_ID
        )
        _, code = await factory.account()
        click = ClickSide(await aiohttp_client(create_app(settings)), code)
        fields = click.prepare_fields()
        reply = await click.post(fields)
        assert reply.body == sign_failed(fields)
        assert await factory.count("SELECT count(*) FROM payments") == 0

    async def test_log_line_keeps_secrets_out(self, world: ClickWorld) -> None:
        """The canonical line names the step, masked code, txn and result; no key, no signature."""
        prepare_id = (await world.click.prepare()).body["merchant_prepare_id"]
        fields = world.click.complete_fields(prepare_id)
        with capture_logs() as logs:
            reply = await world.click.post(fields)
        assert reply.body == ok_complete(world.code, prepare_id)
        (line,) = [entry for entry in logs if entry["event"] == "request"]
        assert line["command"] == "complete"
        assert line["txn"] == "1001"
        assert line["result"] == "0"
        assert line["code"] == "*" * (len(world.code) - 4) + world.code[-4:]
        text = repr(logs)
        for secret in (SECRET, fields["sign_string"], world.code):
            assert secret not in text
