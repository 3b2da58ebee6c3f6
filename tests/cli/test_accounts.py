"""`tolem account …` and `tolem payer add`: each command with good and bad input; bad input
changes nothing."""

import asyncpg

from tests.cli.conftest import Cli, count, one_error_line
from tests.conftest import Factory
from tolem.core.model import PayCommand
from tolem.core.payment_codes import CodeShape, classify
from tolem.core.service import PaymentService


class TestAccounts:
    async def test_create_then_show_zero_balance(self, cli: Cli) -> None:
        """account create prints id and an issued code; account show --code shows balance 0.00."""
        created = await cli(
            "account",
            "create",
            "--email",
            "asan@example.kg",
            "--name",
            "Asanov Asan",
            "--service",
            "example.kg",
            "--json",
        )
        assert created.code == 0
        data = created.json()
        assert classify(data["payment_code"]) is CodeShape.ISSUED
        shown = await cli("account", "show", "--code", data["payment_code"])
        assert shown.code == 0
        assert "balance: 0.00 KGS" in shown.out
        assert data["payment_code"] in shown.out
        as_json = (await cli("account", "show", str(data["account_id"]), "--json")).json()
        assert as_json[0]["balance_minor"] == 0
        assert as_json[0]["services"] == ["example.kg"]

    async def test_create_warns_when_the_email_owns_an_account(self, cli: Cli) -> None:
        """A second account for an email is created with a warning naming the first (also in --json)."""
        first = (await cli("account", "create", "--email", "dup@example.kg", "--name", "A", "--json")).json()
        second = await cli("account", "create", "--email", "DUP@example.kg", "--name", "B", "--json")
        assert second.code == 0
        data = second.json()
        assert data["same_email_accounts"] == [first["account_id"]]
        assert f"account(s) {first['account_id']}" in data["warning"]
        assert second.err.startswith("tolem: warning: ")
        assert len(second.err.strip().splitlines()) == 1
        third = await cli("account", "create", "--email", "solo@example.kg", "--name", "C", "--json")
        assert "warning" not in third.json()
        assert third.err == ""

    async def test_show_states_the_zone_and_currency_of_payments(
        self, cli: Cli, service: PaymentService, factory: Factory
    ) -> None:
        """account show prints payment times in the deployment's zone, named, with amounts' currency."""
        provider = await factory.provider()
        account_id, code = await factory.account()
        await service.pay(provider, PayCommand("t-1", code, 150_50))
        shown = await cli("account", "show", str(account_id))
        assert "last payments (times in Asia/Bishkek):" in shown.out
        line = next(x for x in shown.out.splitlines() if " t-1 " in x)
        assert "+0600" in line
        assert "150.50 KGS" in line

    async def test_lookup_by_email_and_service_is_case_blind(self, cli: Cli) -> None:
        """Support finds the account by email or service name however the caller spells it."""
        data = (
            await cli(
                "account",
                "create",
                "--email",
                "Bek@Example.kg",
                "--name",
                "Bek",
                "--service",
                "Shop.KG",
                "--json",
            )
        ).json()
        by_email = (await cli("account", "show", "--email", "bek@example.KG", "--json")).json()
        by_service = (await cli("account", "show", "--service", "shop.kg", "--json")).json()
        assert by_email[0]["id"] == by_service[0]["id"] == data["account_id"]

    async def test_bad_account_input_changes_nothing(self, cli: Cli, pool: asyncpg.Pool) -> None:
        """Bad email, empty name and over-long service are refused with one line; no rows."""
        for args in (
            ("--email", "not-an-email", "--name", "X"),
            ("--email", "a@b.kg", "--name", "   "),
            ("--email", "a@b.kg", "--name", "X", "--service", "s" * 300),
            ("--email", "a@b.kg"),
        ):
            one_error_line(await cli("account", "create", *args))
        assert await count(pool, "accounts") == 0
        assert await count(pool, "payers") == 0

    async def test_show_needs_exactly_one_key(self, cli: Cli) -> None:
        """show with no key, two keys or an unknown key exits non-zero."""
        one_error_line(await cli("account", "show"))
        one_error_line(await cli("account", "show", "1", "--email", "a@b.kg"))
        one_error_line(await cli("account", "show", "999"))
        one_error_line(await cli("account", "show", "--code", "00;1"))

    async def test_payer_add_gives_a_new_code(self, cli: Cli) -> None:
        """payer add returns a second, different code for the same account."""
        data = (await cli("account", "create", "--email", "a@b.kg", "--name", "A", "--json")).json()
        added = (await cli("payer", "add", str(data["account_id"]), "--name", "Firm LLC", "--json")).json()
        assert added["payment_code"] != data["payment_code"]
        shown = (await cli("account", "show", "--code", added["payment_code"], "--json")).json()
        assert [p["payment_code"] for p in shown[0]["payers"]] == [
            data["payment_code"],
            added["payment_code"],
        ]
        one_error_line(await cli("payer", "add", "424242"))
        one_error_line(await cli("payer", "add", "not-a-number"))

    async def test_block_and_unblock(self, cli: Cli) -> None:
        """Blocking flips the status shown; an unknown account is an error."""
        data = (await cli("account", "create", "--email", "a@b.kg", "--name", "A", "--json")).json()
        account = str(data["account_id"])
        assert (await cli("account", "block", account)).code == 0
        assert (await cli("account", "show", account, "--json")).json()[0]["status"] == "blocked"
        assert (await cli("account", "unblock", account)).code == 0
        assert (await cli("account", "show", account, "--json")).json()[0]["status"] == "active"
        one_error_line(await cli("account", "block", "999999"))
