"""Requests we cannot act on: missing, repeated or malformed fields, wrong transport. All -8
(or the HTTP layer's own refusal), echoing the ids of a form that could be read, and nothing is
ever stored."""

from urllib.parse import urlencode

import aiohttp
import pytest

from tests.http.click.conftest import BAD_REQUEST, ClickWorld, bad_request, sign

SIGNED_FIELDS = [
    "click_trans_id",
    "service_id",
    "merchant_trans_id",
    "amount",
    "action",
    "sign_time",
    "sign_string",
]


async def nothing_stored(world: ClickWorld) -> None:
    """No payment, no transfer, no balance."""
    assert await world.money() == (0, 0, 0)


class TestMissing:
    @pytest.mark.parametrize("name", [*SIGNED_FIELDS, "error"])
    async def test_prepare_without_a_field_is_minus_8(self, world: ClickWorld, name: str) -> None:
        """A Prepare lacking any signed field, or Click's error status, answers -8."""
        fields = world.click.prepare_fields()
        del fields[name]
        reply = await world.click.post(fields)
        assert (reply.status, reply.body) == (200, bad_request(fields))
        await nothing_stored(world)

    async def test_complete_without_prepare_id_is_minus_8(self, world: ClickWorld) -> None:
        """A Complete lacking merchant_prepare_id cannot be verified: -8."""
        fields = world.click.complete_fields(1)
        del fields["merchant_prepare_id"]
        reply = await world.click.post(fields)
        assert reply.body == bad_request(fields)
        await nothing_stored(world)

    @pytest.mark.parametrize("name", ["click_paydoc_id", "error_note"])
    async def test_informational_fields_are_optional(self, world: ClickWorld, name: str) -> None:
        """click_paydoc_id and error_note are not signed and not needed: Prepare works without."""
        fields = world.click.prepare_fields()
        del fields[name]
        reply = await world.click.post(fields)
        assert reply.body["error"] == 0
        assert await world.money() == (0, 1, 0)

    async def test_empty_body_is_minus_8(self, world: ClickWorld) -> None:
        """An empty POST answers -8."""
        reply = await world.click.post(b"", headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert reply.body == BAD_REQUEST
        await nothing_stored(world)


class TestMalformedButSigned:
    @pytest.mark.parametrize(
        ("name", "value"),
        [
            ("click_trans_id", "0123"),
            ("click_trans_id", "12a"),
            ("click_trans_id", "-5"),
            ("click_trans_id", "0"),
            ("click_trans_id", "9223372036854775808"),
            ("click_trans_id", "1" * 21),
            ("sign_time", "2024-5-1 12:00:00"),
            ("sign_time", "2024-02-30 12:00:00"),
            ("sign_time", "2024-05-01T12:00:00"),
            ("sign_time", "1999-12-31 23:59:59"),
            ("error", "abc"),
            ("error", ""),
            ("error", "-1234567890"),
            ("click_paydoc_id", "x"),
        ],
    )
    async def test_prepare_field_is_minus_8(self, world: ClickWorld, name: str, value: str) -> None:
        """A correctly signed Prepare with a malformed field answers -8 and stores nothing."""
        fields = world.click.prepare_fields(**{name: value})
        reply = await world.click.post(fields)
        assert reply.body == bad_request(fields)
        await nothing_stored(world)

    @pytest.mark.parametrize("value", ["abc", "0", "", "9223372036854775808"])
    async def test_complete_prepare_id_is_minus_8(self, world: ClickWorld, value: str) -> None:
        """A signed Complete whose merchant_prepare_id is not an id answers -8."""
        prepare_id = (await world.click.prepare()).body["merchant_prepare_id"]
        fields = world.click.complete_fields(value)
        reply = await world.click.post(fields)
        assert reply.body == bad_request(fields)
        assert await world.state(prepare_id) == ("reserved", None)
        assert await world.money() == (0, 1, 0)

    async def test_largest_bigint_id_is_accepted_and_echoed(self, world: ClickWorld) -> None:
        """click_trans_id at the top of bigint is a valid id, echoed as a JSON number."""
        top = str(2**63 - 1)
        reply = await world.click.prepare(top)
        assert reply.body["click_trans_id"] == 2**63 - 1
        assert reply.body["error"] == 0

    async def test_unknown_extra_field_is_ignored(self, world: ClickWorld) -> None:
        """Fields Click may add later do not disturb the request."""
        reply = await world.click.prepare(something_new="1")
        assert reply.body["error"] == 0


class TestTransport:
    async def test_repeated_field_is_minus_8(self, world: ClickWorld) -> None:
        """A field sent twice leaves open which value was signed: -8."""
        fields = world.click.prepare_fields()
        body = urlencode([*fields.items(), ("amount", "1000000")])
        reply = await world.click.post(body, headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert reply.body == BAD_REQUEST
        await nothing_stored(world)

    async def test_get_is_minus_8(self, world: ClickWorld) -> None:
        """Click only POSTs; a GET with the fields in the query answers -8."""
        response = await world.click.client.get("/gw/click", params=world.click.prepare_fields())
        assert await response.json() == BAD_REQUEST
        await nothing_stored(world)

    async def test_json_body_is_minus_8(self, world: ClickWorld) -> None:
        """The same fields as JSON are not Click's format: -8."""
        response = await world.click.client.post("/gw/click", json=world.click.prepare_fields())
        assert await response.json() == BAD_REQUEST
        await nothing_stored(world)

    @pytest.mark.parametrize("suffix", [b"&note=%FF%FE", b"&\xff\xfe=1", b"&flag", b"&&"])
    async def test_unreadable_form_is_minus_8(self, world: ClickWorld, suffix: bytes) -> None:
        """A valid signed form spoiled by bytes that are not well-formed UTF-8 url-encoding: -8."""
        body = urlencode(world.click.prepare_fields()).encode() + suffix
        reply = await world.click.post(body, headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert reply.body == BAD_REQUEST
        await nothing_stored(world)

    async def test_too_many_fields_is_minus_8(self, world: ClickWorld) -> None:
        """A form with far more fields than Click sends is refused -8."""
        fields = world.click.prepare_fields() | {f"x{i}": "1" for i in range(80)}
        reply = await world.click.post(fields)
        assert reply.body == BAD_REQUEST
        await nothing_stored(world)

    async def test_multipart_form_is_read(self, world: ClickWorld) -> None:
        """The same fields as multipart/form-data are accepted."""
        form = aiohttp.FormData(default_to_multipart=True)
        for name, value in world.click.prepare_fields().items():
            form.add_field(name, value)
        response = await world.click.client.post("/gw/click", data=form)
        assert response.request_info.headers["Content-Type"].startswith("multipart/form-data")
        reply = await response.json()
        assert reply["error"] == 0
        assert await world.money() == (0, 1, 0)

    async def test_form_without_content_type_is_read(self, world: ClickWorld) -> None:
        """A url-encoded body sent without a Content-Type is still read (the signature decides)."""
        body = urlencode(world.click.prepare_fields()).encode()
        reply = await world.click.post(body)
        assert reply.body["error"] == 0

    async def test_oversized_body_is_refused_by_http(self, world: ClickWorld) -> None:
        """A body over the gateway's limit is refused with 413 before the adapter sees it."""
        fields = world.click.prepare_fields(error_note="x" * 70_000)
        fields["sign_string"] = sign(fields)
        reply = await world.click.post(fields)
        assert reply.status == 413
        await nothing_stored(world)
