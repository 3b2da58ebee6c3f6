"""The request journal as the gateway records it: every call to a known provider, masked."""

import json
from datetime import UTC, datetime
from typing import Any

from tests.ops.conftest import ClickWorld, Payme
from tolem.core.payment_codes import mask
from tolem.gateway.handler import JOURNAL
from tolem.gateway.journal import entry_for, scrub_body


async def journal_rows(world: ClickWorld) -> list[dict[str, Any]]:
    """Everything journaled so far (buffered calls written first), oldest first."""
    await world.click.client.app[JOURNAL].flush()
    async with world.factory.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT provider, host(remote_addr) AS remote_addr, method, command, txn, code_masked, "
            "result, http_status, response_body, details, duration_us, request_id "
            "FROM request_journal ORDER BY id"
        )
    return [dict(r) for r in rows]


class TestGatewayRecording:
    async def test_accepted_call_is_journaled_masked(self, world: ClickWorld) -> None:
        """A Prepare leaves one row: provider, address, command, txn, masked code, result, masked body."""
        reply = await world.click.post(world.click.prepare_fields("777"), headers={"X-Request-Id": "req-777"})
        assert reply.body["error"] == 0
        [row] = await journal_rows(world)
        assert {k: row[k] for k in ("provider", "remote_addr", "method", "command", "txn")} == {
            "provider": "click",
            "remote_addr": "127.0.0.1",
            "method": "POST",
            "command": "prepare",
            "txn": "777",
        }
        assert (row["code_masked"], row["result"], row["http_status"]) == (mask(world.code), "0", 200)
        assert row["request_id"] == "req-777"
        assert row["duration_us"] >= 0
        body = json.loads(row["response_body"])
        assert body["merchant_trans_id"] == mask(world.code)
        assert body["merchant_prepare_id"] == reply.body["merchant_prepare_id"]
        assert world.code not in json.dumps(row, default=str)

    async def test_refused_call_is_journaled_without_its_signature(self, world: ClickWorld) -> None:
        """A call with a wrong signature is recorded with its refusal; the signature is nowhere."""
        fields = world.click.prepare_fields("778", sign_string="0" * 31 + "f")
        reply = await world.click.post(fields)
        assert reply.body["error"] == -1
        [row] = await journal_rows(world)
        assert (row["command"], row["result"]) == ("prepare", "-1")
        assert json.loads(row["details"])["refusal"] == "bad signature"
        assert "0" * 31 + "f" not in json.dumps(row, default=str)

    async def test_unknown_provider_is_not_journaled(self, world: ClickWorld) -> None:
        """A call to a provider we do not have gets 404 and leaves no row."""
        response = await world.click.client.get("/gw/nobody?command=pay")
        assert response.status == 404
        assert await journal_rows(world) == []

    async def test_every_repeat_is_its_own_row(self, world: ClickWorld) -> None:
        """A retried call is journaled again: the journal is the conversation, not the payments."""
        first = await world.click.prepare("779")
        second = await world.click.prepare("779")
        assert first.body == second.body
        rows = await journal_rows(world)
        assert [r["txn"] for r in rows] == ["779", "779"]
        assert await world.factory.count("SELECT count(*) FROM payments") == 1


class TestPaymeRecording:
    async def test_statement_codes_masked_error_codes_kept_key_never_stored(
        self, payme: Payme, account: tuple[int, str], clock: Any
    ) -> None:
        """Payme's statement is journaled with codes masked, errors keep their numbers, the key is nowhere."""
        from tests.http.payme.conftest import KEY, basic

        _, code = account
        assert "result" in await payme.create("p-1", code, 1000, clock.ms())
        statement = await payme.call("GetStatement", {"from": 0, "to": clock.ms() + 1})
        assert statement["result"]["transactions"][0]["account"] == {"code": code}
        unknown = await payme.create("p-2", "ZZ-404", 1000, clock.ms())
        refused = await payme.call("CheckTransaction", {"id": "p-1"}, auth=basic("Paycom", KEY[:-1] + "x"))
        await payme.client.app[JOURNAL].flush()
        async with payme.factory.pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT command, txn, result, response_body FROM request_journal ORDER BY id"
            )
        assert [(r["command"], r["txn"]) for r in rows] == [
            ("CreateTransaction", "p-1"),
            ("GetStatement", None),
            ("CreateTransaction", "p-2"),
            ("CheckTransaction", "p-1"),
        ]
        stored = json.loads(rows[1]["response_body"])
        assert stored["result"]["transactions"][0]["account"] == {"code": mask(code)}
        assert json.loads(rows[2]["response_body"])["error"]["code"] == unknown["error"]["code"]
        assert rows[3]["result"] == str(refused["error"]["code"])
        everything = json.dumps([dict(r) for r in rows])
        assert code not in everything and KEY not in everything


class TestScrubbing:
    def test_json_codes_masked_and_secrets_replaced(self) -> None:
        """Code-bearing keys are masked, secret keys replaced, other values kept."""
        body = json.dumps(
            {
                "result": {"transactions": [{"account": {"code": "ABC-123456"}, "amount": 500}]},
                "sign_string": "deadbeef",
                "merchant_trans_id": "001234567897",
            }
        )
        assert json.loads(scrub_body(body)) == {
            "result": {"transactions": [{"account": {"code": "******3456"}, "amount": 500}]},
            "sign_string": "***",
            "merchant_trans_id": "********7897",
        }

    def test_numeric_error_codes_are_kept(self) -> None:
        """A JSON-RPC error's numeric `code` is a result, not a payment code: it stays as it is."""
        body = json.dumps({"id": 7, "error": {"code": -31050, "message": {"en": "x"}, "data": "code"}})
        assert json.loads(scrub_body(body)) == json.loads(body)

    def test_xml_and_bare_issued_codes_masked(self) -> None:
        """XML fields named like codes are masked, and so is any bare issued-shape code."""
        body = "<r><account>ZX-99887766</account><comment>paid 001234567897 ok</comment></r>"
        assert (
            scrub_body(body) == "<r><account>*******7766</account><comment>paid ********7897 ok</comment></r>"
        )

    def test_xml_keys_match_in_any_case_and_only_whole_names(self) -> None:
        """<Sign> and <ACCOUNT> are scrubbed; <accounts> and <code_hint> are not code fields."""
        others = "<accounts>7</accounts><code_hint>x</code_hint>"
        body = f"<r><Sign>abc</Sign><ACCOUNT>ZX-99887766</ACCOUNT>{others}</r>"
        assert scrub_body(body) == f"<r><Sign>***</Sign><ACCOUNT>*******7766</ACCOUNT>{others}</r>"

    def test_issued_code_shape_needs_digit_free_edges(self) -> None:
        """Only a standalone 00+10 digits is masked: at either end of the body, not inside a longer number."""
        assert scrub_body("001234567897") == "********7897"
        assert scrub_body("x:001234567897.") == "x:********7897."
        assert scrub_body("9001234567897") == "9001234567897"
        assert scrub_body("0012345678970") == "0012345678970"
        assert scrub_body("0001234567897") == "0001234567897"

    def test_unmasked_code_in_log_line_is_masked_before_storing(self) -> None:
        """Whatever an adapter put as `code`, the stored value shows at most four characters."""
        from aiohttp import web

        stored = entry_for(
            provider="kiosk",
            method="GET",
            remote_addr=None,
            received_at=datetime.now(UTC),
            duration_s=0.01,
            line={"command": "pay", "code": "001234567897", "txn": "5", "secretless": True},
            response=web.Response(text="ok"),
            request_id=None,
        )
        assert stored.code_masked == "********7897"
        assert stored.details == {"secretless": True}
        assert stored.duration_us == 10_000
